package io.kvasir.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link EngineLoop} on the tiny CPU model under {@code full}: requests from many threads get the
 * tokens {@link Engine#generateAll} gives them (the CPU step is exact under batching and paging,
 * and sampling is keyed by the request id, so the reference runs the requests in id order on a
 * fresh engine); cancellation, shutdown and failing listeners leave no page behind. Timing is only
 * bounded generously (waits of tens of seconds that a correct loop never approaches).
 */
class EngineLoopTest {
  private static final long WAIT_S = 60;

  @TempDir
  Path tmp;

  @BeforeEach
  void isolateTheModelCache() {
    System.setProperty("kvasir.cache", tmp.toString());
  }

  @AfterEach
  void restore() {
    System.clearProperty("kvasir.cache");
  }

  private static Engine engine(String policy) {
    Engine.Builder b = Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optDtype(DType.BF16)
        .optMaxContext(160).optMaxBatch(4).optMaxStepTokens(64).optPageTokens(8);
    if (policy != null) {
      b.optPolicy(policy);
    }
    return b.build();
  }

  /** Collects one request's stream; completes when every sample ended (or the request failed). */
  private static class Collector implements StreamListener {
    final int n;
    final List<List<Integer>> tokens = new CopyOnWriteArrayList<>();
    final List<List<TokenLogprobs>> logprobs = new CopyOnWriteArrayList<>();
    final GenerationResult[] results;
    final CompletableFuture<GenerationResult[]> done = new CompletableFuture<>();
    final AtomicInteger finishes = new AtomicInteger();
    volatile Throwable error;
    volatile boolean tokenAfterFinish;

    Collector(int n) {
      this.n = n;
      this.results = new GenerationResult[n];
      for (int j = 0; j < n; ++j) {
        tokens.add(new CopyOnWriteArrayList<>());
        logprobs.add(new CopyOnWriteArrayList<>());
      }
    }

    @Override
    public void onToken(int sample, int token, String textDelta, TokenLogprobs lp) {
      if (results[sample] != null) {
        tokenAfterFinish = true;
      }
      tokens.get(sample).add(token);
      logprobs.get(sample).add(lp);
    }

    @Override
    public void onFinish(int sample, GenerationResult result) {
      results[sample] = result;
      if (finishes.incrementAndGet() == n) {
        done.complete(results);
      }
    }

    @Override
    public void onError(Throwable e) {
      error = e;
      done.completeExceptionally(e);
    }

    GenerationResult[] await() throws Exception {
      return done.get(WAIT_S, TimeUnit.SECONDS);
    }
  }

  private static void eventually(BooleanSupplier condition, String what) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > end) {
        throw new AssertionError("timed out waiting until " + what);
      }
      Thread.sleep(2);
    }
  }

  private static List<GenerationRequest> requests(Engine e, int count, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    int[] shared = e.encode("A shared system prompt that several requests start with, long enough for pages.");
    List<GenerationRequest> out = new ArrayList<>();
    for (int i = 0; i < count; ++i) {
      int[] own = e.encode(" request " + i + " asks " + rng.nextInt(1000));
      int[] prompt = new int[shared.length + own.length];
      System.arraycopy(shared, 0, prompt, 0, shared.length);
      System.arraycopy(own, 0, prompt, shared.length, own.length);
      SamplingParams sampling = i % 2 == 0 ? SamplingParams.greedy() : SamplingParams.sample(0.8f, seed + i);
      out.add(GenerationRequest.of(i % 4 == 0 ? own : prompt, 3 + rng.nextInt(20), sampling)
          .withIgnoreEos(i % 3 == 0));
    }
    return out;
  }

  @Test
  void concurrentSubmittersGetTheirGenerateAllTokens() throws Exception {
    long seed = 20261129L;
    int count = 64;
    List<GenerationRequest> requests;
    long[] ids = new long[count];
    Collector[] got = new Collector[count];
    try (Engine e = engine("full")) {
      requests = requests(e, count, seed);
      LoopMetrics m;
      try (EngineLoop loop = EngineLoop.start(e, count)) {
        CountDownLatch go = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(count);
        try {
          List<Future<?>> futures = new ArrayList<>();
          for (int i = 0; i < count; ++i) {
            final int k = i;
            got[k] = new Collector(1);
            futures.add(pool.submit(() -> {
              go.await();
              ids[k] = loop.submit(requests.get(k), 1, got[k]).id();
              got[k].await();
              return null;
            }));
          }
          go.countDown();
          for (Future<?> f : futures) {
            f.get(WAIT_S, TimeUnit.SECONDS);
          }
        } finally {
          pool.shutdownNow();
        }
        eventually(() -> loop.metrics().running() == 0 && loop.metrics().kvPagesUsedDevice() == 0,
            "the loop drained");
        m = loop.metrics();
      }
      // Metrics count what was served.
      long prompt = 0;
      long generated = 0;
      long gaps = 0;
      for (int i = 0; i < count; ++i) {
        GenerationResult r = got[i].results[0];
        prompt += r.stats().promptTokens();
        generated += r.tokens().length;
        gaps += r.stats().interTokenMillis().length;
      }
      assertEquals(prompt, m.promptTokens());
      assertEquals(generated, m.generationTokens());
      assertEquals(count, m.requestsFinished());
      assertEquals(0, m.requestsCancelled() + m.requestsFailed());
      assertEquals(count, m.ttft().count());
      assertEquals(count, m.e2e().count());
      assertEquals(gaps, m.interToken().count());
      long[] cumulative = m.e2e().cumulativeCounts();
      assertEquals(count, cumulative[cumulative.length - 1]);
      assertEquals(0, m.waiting());
      assertTrue(m.prefixTokensHit() > 0, "the shared prompt was found in the prefix cache");
    }
    // The reference: the same requests in id order on a fresh engine, whose ids are the same.
    Integer[] order = new Integer[count];
    for (int i = 0; i < count; ++i) {
      order[i] = i;
    }
    java.util.Arrays.sort(order, Comparator.comparingLong(i -> ids[i]));
    for (int k = 0; k < count; ++k) {
      assertEquals(k + 1, ids[order[k]], "ids are drawn consecutively from a fresh engine");
    }
    List<GenerationRequest> inIdOrder = new ArrayList<>();
    for (Integer i : order) {
      inIdOrder.add(requests.get(i));
    }
    List<GenerationResult> want;
    try (Engine e = engine("full")) {
      want = e.generateAll(inIdOrder, null);
    }
    for (int k = 0; k < count; ++k) {
      Collector c = got[order[k]];
      String what = "request " + order[k] + " (id " + ids[order[k]] + ")";
      assertArrayEquals(want.get(k).tokens(), c.results[0].tokens(), what);
      assertEquals(want.get(k).finishReason(), c.results[0].finishReason(), what);
      assertEquals(want.get(k).text(), c.results[0].text(), what);
      assertArrayEquals(want.get(k).tokens(), c.tokens.get(0).stream().mapToInt(Integer::intValue).toArray(),
          what + ": streamed");
      assertFalse(c.tokenAfterFinish, what);
    }
  }

  @Test
  void samplesOfOneRequestAreGenerateSamplesOnes() throws Exception {
    GenerationRequest r;
    Collector c = new Collector(3);
    try (Engine e = engine("full")) {
      r = GenerationRequest.of(e.encode("Once upon a time"), 12, SamplingParams.sample(0.9f, 7)).withIgnoreEos(true);
      try (EngineLoop loop = EngineLoop.start(e, 4)) {
        assertEquals(1, loop.submit(r, 3, c).id());
        c.await();
      }
    }
    List<GenerationResult> want;
    try (Engine e = engine("full")) {
      want = e.generateSamples(r, 3);
    }
    for (int j = 0; j < 3; ++j) {
      assertArrayEquals(want.get(j).tokens(), c.results[j].tokens(), "sample " + j);
      assertArrayEquals(want.get(j).tokens(), c.tokens.get(j).stream().mapToInt(Integer::intValue).toArray());
    }
  }

  @Test
  void cancellingSamplesEndsEachOfThemAndFreesTheirPages() throws Exception {
    try (Engine e = engine("full"); EngineLoop loop = EngineLoop.start(e, 4)) {
      GenerationRequest r = GenerationRequest.of(e.encode("Once upon a time"), 120, SamplingParams.sample(0.9f, 3))
          .withIgnoreEos(true).withLogprobs(2);
      for (int cancelAfter : new int[] {0, 1, 5}) {  // 0: while the prompt's pages are still shared
        Collector c = new Collector(3);
        RequestHandle h = loop.submit(r, 3, c);
        eventually(() -> c.tokens.stream().mapToInt(List::size).sum() >= cancelAfter, "tokens stream");
        h.cancel();
        GenerationResult[] got = c.await();
        for (int j = 0; j < 3; ++j) {
          assertEquals(FinishReason.CANCELLED, got[j].finishReason(), "sample " + j);
          assertEquals(c.tokens.get(j).size(), got[j].tokens().length, "sample " + j);
          assertTrue(c.logprobs.get(j).stream().allMatch(x -> x != null && x.top().size() == 2));
        }
        assertTrue(h.isDone());
        eventually(() -> loop.metrics().kvPagesUsedDevice() == 0 && loop.metrics().running() == 0,
            "pages are freed (cancel after " + cancelAfter + ")");
      }
    }
  }

  @Test
  void cancelMidStreamFreesThePages() throws Exception {
    try (Engine e = engine("full"); EngineLoop loop = EngineLoop.start(e, 8)) {
      GenerationRequest r = GenerationRequest.of(e.encode("Count to a hundred:"), 120, SamplingParams.greedy())
          .withIgnoreEos(true);
      // One cancels itself from its own listener (the loop thread), one is cancelled from this thread.
      RequestHandle[] self = new RequestHandle[1];
      CountDownLatch submitted = new CountDownLatch(1);
      Collector a = new Collector(1) {
        @Override
        public void onToken(int sample, int token, String textDelta, TokenLogprobs lp) {
          super.onToken(sample, token, textDelta, lp);
          if (tokens.get(0).size() == 3) {
            try {
              submitted.await();
            } catch (InterruptedException ex) {
              throw new IllegalStateException(ex);
            }
            self[0].cancel();
          }
        }
      };
      self[0] = loop.submit(r, 1, a);
      submitted.countDown();
      Collector b = new Collector(1);
      RequestHandle hb = loop.submit(r, 1, b);
      eventually(() -> b.tokens.get(0).size() >= 2, "b streams");
      hb.cancel();
      hb.cancel();  // idempotent
      GenerationResult ra = a.await()[0];
      GenerationResult rb = b.await()[0];
      assertEquals(FinishReason.CANCELLED, ra.finishReason());
      assertEquals(FinishReason.CANCELLED, rb.finishReason());
      assertEquals(3, ra.tokens().length, "no token after the cancelling one");
      assertTrue(rb.tokens().length < 120);
      assertTrue(self[0].isDone() && hb.isDone());
      eventually(() -> loop.metrics().kvPagesUsedDevice() == 0 && loop.metrics().running() == 0, "pages are freed");
      assertEquals(2, loop.metrics().requestsCancelled());
      assertEquals(0, loop.metrics().ttft().count(), "cancelled requests stay out of the latency histograms");
      // The loop goes on.
      Collector c = new Collector(1);
      loop.submit(GenerationRequest.of(e.encode("Hi"), 4, SamplingParams.greedy()).withIgnoreEos(true), 1, c);
      assertEquals(4, c.await()[0].tokens().length);
    }
  }

  @Test
  void aFullQueueRejects() throws Exception {
    try (Engine e = engine("full"); EngineLoop loop = EngineLoop.start(e, 2)) {
      GenerationRequest r = GenerationRequest.of(e.encode("Hello"), 5, SamplingParams.greedy()).withIgnoreEos(true);
      CountDownLatch blocked = new CountDownLatch(1);
      CountDownLatch release = new CountDownLatch(1);
      Collector a = new Collector(1) {
        @Override
        public void onToken(int sample, int token, String textDelta, TokenLogprobs lp) {
          super.onToken(sample, token, textDelta, lp);
          blocked.countDown();
          try {
            release.await();  // holds the loop thread (a real listener must not block)
          } catch (InterruptedException ex) {
            throw new IllegalStateException(ex);
          }
        }
      };
      loop.submit(r, 1, a);
      assertTrue(blocked.await(WAIT_S, TimeUnit.SECONDS));
      Collector b = new Collector(1);
      Collector c = new Collector(1);
      loop.submit(r, 1, b);
      loop.submit(r, 1, c);
      assertEquals(2, loop.metrics().waiting());
      assertThrows(RejectedExecutionException.class, () -> loop.submit(r, 1, new Collector(1)));
      release.countDown();
      assertEquals(5, a.await()[0].tokens().length);
      assertEquals(5, b.await()[0].tokens().length);
      assertEquals(5, c.await()[0].tokens().length);
      // Room again once the queue drained.
      Collector d = new Collector(1);
      loop.submit(r, 1, d);
      assertEquals(5, d.await()[0].tokens().length);
    }
  }

  @Test
  void shutdownCancelsWhatOutlivesTheDeadlineAndFreesEverything() throws Exception {
    try (Engine e = engine("full")) {
      EngineLoop loop = EngineLoop.start(e, 16);
      List<Collector> cs = new ArrayList<>();
      for (int i = 0; i < 6; ++i) {
        Collector c = new Collector(1) {
          @Override
          public void onToken(int sample, int token, String textDelta, TokenLogprobs lp) {
            super.onToken(sample, token, textDelta, lp);
            try {
              Thread.sleep(2);  // a slow stream, so that the deadline finds requests in flight
            } catch (InterruptedException ex) {
              throw new IllegalStateException(ex);
            }
          }
        };
        cs.add(c);
        loop.submit(GenerationRequest.of(e.encode("Request " + i), 140, SamplingParams.greedy()).withIgnoreEos(true),
            1, c);
      }
      eventually(() -> cs.get(0).tokens.get(0).size() > 0, "the first request streams");
      loop.shutdown(Duration.ofMillis(50));
      int cancelled = 0;
      for (Collector c : cs) {
        assertTrue(c.done.isDone(), "every request ended by the time shutdown returned");
        GenerationResult r = c.await()[0];
        cancelled += r.finishReason() == FinishReason.CANCELLED ? 1 : 0;
      }
      assertTrue(cancelled > 0, "6 x 140 tokens at 2 ms each outlive a 50 ms deadline");
      LoopMetrics m = loop.metrics();
      assertEquals(0, m.kvPagesUsedDevice());
      assertEquals(0, m.running());
      assertThrows(IllegalStateException.class,
          () -> loop.submit(GenerationRequest.of(new int[] {1}, 1, SamplingParams.greedy()), 1, new Collector(1)));
      loop.shutdown(Duration.ZERO);  // idempotent
      loop.close();
      // The engine is free again.
      assertEquals(2, e.generate(GenerationRequest.of(e.encode("Hi"), 2, SamplingParams.greedy())
          .withIgnoreEos(true)).tokens().length);
    }
  }

  @Test
  void aThrowingListenerFailsOnlyItsRequest() throws Exception {
    try (Engine e = engine("full"); EngineLoop loop = EngineLoop.start(e, 8)) {
      GenerationRequest r = GenerationRequest.of(e.encode("Tell me"), 10, SamplingParams.greedy()).withIgnoreEos(true);
      Collector bad = new Collector(1) {
        @Override
        public void onToken(int sample, int token, String textDelta, TokenLogprobs lp) {
          super.onToken(sample, token, textDelta, lp);
          if (tokens.get(0).size() == 2) {
            throw new IllegalStateException("client went away");
          }
        }
      };
      Collector good = new Collector(1);
      RequestHandle hb = loop.submit(r, 1, bad);
      loop.submit(r, 1, good);
      Exception ex = assertThrows(java.util.concurrent.ExecutionException.class, bad::await);
      assertEquals("client went away", ex.getCause().getMessage());
      assertNull(bad.results[0], "no onFinish after onError");
      assertEquals(2, bad.tokens.get(0).size());
      assertTrue(hb.isDone());
      assertEquals(10, good.await()[0].tokens().length);
      eventually(() -> loop.metrics().kvPagesUsedDevice() == 0, "pages are freed");
      assertEquals(1, loop.metrics().requestsFailed());
      Collector after = new Collector(1);
      loop.submit(r, 1, after);
      assertArrayEquals(good.results[0].tokens(), after.await()[0].tokens());
    }
  }

  @Test
  void aStepThatThrowsFailsItsRequestsAndTheLoopGoesOn() throws Exception {
    try (Engine e = engine("full"); EngineLoop loop = EngineLoop.start(e, 8)) {
      GenerationRequest r = GenerationRequest.of(e.encode("Tell me"), 30, SamplingParams.greedy()).withIgnoreEos(true);
      AtomicInteger plans = new AtomicInteger();
      loop.pagedRun().afterPlan = () -> {
        if (plans.incrementAndGet() == 5) {  // mid-generation, with pages reserved and the step in flight
          throw new IllegalStateException("injected step failure");
        }
      };
      Collector a = new Collector(1);
      Collector b = new Collector(1);
      loop.submit(r, 1, a);
      loop.submit(r, 1, b);
      for (Collector c : List.of(a, b)) {
        Exception ex = assertThrows(java.util.concurrent.ExecutionException.class, c::await);
        assertEquals("injected step failure", ex.getCause().getMessage());
        assertNull(c.results[0]);
      }
      eventually(() -> loop.metrics().kvPagesUsedDevice() == 0 && loop.metrics().running() == 0, "pages are freed");
      assertEquals(2, loop.metrics().requestsFailed());
      loop.pagedRun().afterPlan = null;
      Collector after = new Collector(1);
      loop.submit(r, 1, after);
      assertEquals(30, after.await()[0].tokens().length);
      eventually(() -> loop.metrics().kvPagesUsedDevice() == 0, "pages are freed");
    }
  }

  @Test
  void closingTheEngineShutsTheLoopDown() throws Exception {
    Engine e = engine("full");
    EngineLoop loop = EngineLoop.start(e, 8);
    Collector a = new Collector(1);
    loop.submit(GenerationRequest.of(e.encode("Go on"), 140, SamplingParams.greedy()).withIgnoreEos(true), 1, a);
    e.close();
    assertTrue(a.done.isDone(), "the loop ended its request before the engine let go of the model");
    assertThrows(IllegalStateException.class,
        () -> loop.submit(GenerationRequest.of(new int[] {1}, 1, SamplingParams.greedy()), 1, new Collector(1)));
  }

  @Test
  void logprobsAreTheLogSoftmaxOfTheRawLogits() throws Exception {
    try (Engine e = engine("full")) {
      int[] prompt = e.encode("The capital of France is");
      Collector c = new Collector(1);
      Collector plain = new Collector(1);
      try (EngineLoop loop = EngineLoop.start(e, 4)) {
        loop.submit(GenerationRequest.of(prompt, 8, SamplingParams.greedy()).withIgnoreEos(true).withLogprobs(5), 1,
            c);
        loop.submit(GenerationRequest.of(prompt, 8, SamplingParams.greedy()).withIgnoreEos(true), 1, plain);
        c.await();
        plain.await();
      }
      assertTrue(plain.logprobs.get(0).stream().allMatch(x -> x == null), "none unless asked for");
      int[] tokens = c.results[0].tokens();
      assertEquals(8, tokens.length);
      float[][] logits = e.forceDecode(prompt, tokens);
      int[] seq = new int[prompt.length + tokens.length];
      System.arraycopy(prompt, 0, seq, 0, prompt.length);
      System.arraycopy(tokens, 0, seq, prompt.length, tokens.length);
      float[] scored = e.scoreTokens(List.of(seq)).get(0);
      for (int i = 0; i < tokens.length; ++i) {
        TokenLogprobs lp = c.logprobs.get(0).get(i);
        assertNotNull(lp);
        assertEquals(tokens[i], lp.token());
        assertEquals(5, lp.top().size());
        assertEquals(tokens[i], lp.top().get(0).token(), "greedy takes the most likely token");
        assertEquals(lp.logprob(), lp.top().get(0).logprob());
        assertEquals(e.tokenizer().decode(new int[] {tokens[i]}), lp.text());
        for (int k = 1; k < 5; ++k) {
          assertTrue(lp.top().get(k).logprob() <= lp.top().get(k - 1).logprob());
        }
        // Against the teacher-forced logits of the same sequence (the same paged path), in double.
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits[i]) {
          max = Math.max(max, l);
        }
        double sum = 0;
        for (float l : logits[i]) {
          sum += Math.exp(l - max);
        }
        double want = logits[i][tokens[i]] - max - Math.log(sum);
        assertEquals(want, lp.logprob(), 1e-6, "token " + i);
        assertTrue(lp.logprob() <= 0);
        // And scoreTokens (slot cache, prompt fed token by token: fp32 rounding apart).
        assertEquals(scored[prompt.length - 1 + i], lp.logprob(), 1e-4 * Math.max(1, Math.abs(lp.logprob())),
            "token " + i);
      }
    }
  }

  @Test
  void refusesWhatItCannotServe() throws Exception {
    try (Engine slots = engine(null)) {
      assertThrows(IllegalStateException.class, () -> EngineLoop.start(slots, 4));
    }
    try (Engine e = engine("full"); EngineLoop loop = EngineLoop.start(e, 4)) {
      GenerationRequest ok = GenerationRequest.of(e.encode("Hi"), 2, SamplingParams.greedy());
      assertThrows(IllegalStateException.class, () -> EngineLoop.start(e, 4), "one loop per engine");
      assertThrows(IllegalStateException.class, () -> e.generate(ok), "the loop owns the pages");
      assertThrows(IllegalStateException.class, e::clearPrefixCache);
      assertThrows(IllegalArgumentException.class, () -> loop.submit(ok, 0, new Collector(1)));
      assertThrows(IllegalArgumentException.class, () -> loop.submit(ok, 5, new Collector(5)), "n > maxBatch");
      assertThrows(IllegalArgumentException.class,
          () -> loop.submit(GenerationRequest.of(new int[200], 2, SamplingParams.greedy()), 1, new Collector(1)));
      assertThrows(IllegalArgumentException.class, () -> ok.withLogprobs(21));
      assertThrows(IllegalArgumentException.class, () -> loop.submit(
          GenerationRequest.of(new int[] {1, e.shape().vocabSize()}, 2, SamplingParams.greedy()), 1, new Collector(1)),
          "a token outside the vocabulary");
      Collector c = new Collector(1);
      loop.submit(ok, 1, c);
      c.await();
    }
  }
}
