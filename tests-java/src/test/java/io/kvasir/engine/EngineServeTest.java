package io.kvasir.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Engine#serve}: requests that arrive over time, on a clock that only moves when read (one
 * millisecond per read) or slept on, so that arrival handling is checked without sleeping and
 * without timing assertions. Arrival must never change tokens, and no request may produce a token
 * before it has arrived.
 */
class EngineServeTest {
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

  /** Moves {@code tick} nanoseconds at every read; a sleep jumps to its target and is recorded. */
  private static final class StepClock implements EngineClock {
    final long tick;
    long now = 5_000_000_000L;
    final List<Long> sleeps = new ArrayList<>();

    StepClock(long tick) {
      this.tick = tick;
    }

    @Override
    public long nanoTime() {
      now += tick;
      return now;
    }

    @Override
    public void sleepUntil(long target) {
      sleeps.add(target);
      now = Math.max(now, target);
    }
  }

  private static Engine engine(String policy) {
    Engine.Builder b = Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optDtype(DType.BF16)
        .optMaxContext(128).optMaxBatch(3).optMaxStepTokens(48).optPageTokens(8);
    if (policy != null) {
      b.optPolicy(policy);
    }
    return b.build();
  }

  private static List<GenerationRequest> requests(int vocab, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    List<GenerationRequest> out = new ArrayList<>();
    for (int i = 0; i < 10; ++i) {
      int[] prompt = rng.ints(4 + rng.nextInt(60), 0, vocab).toArray();
      SamplingParams sampling = i % 3 == 0 ? SamplingParams.greedy() : SamplingParams.sample(0.9f, seed + i);
      out.add(GenerationRequest.of(prompt, 3 + rng.nextInt(12), sampling).withIgnoreEos(true));
    }
    return out;
  }

  @Test
  void requestsStartOnlyAfterTheyArriveAndGetTheOfflineTokens() {
    long seed = new SplittableRandom().nextLong();
    List<GenerationResult> want;
    List<GenerationRequest> requests;
    try (Engine offline = engine("full")) {
      requests = requests(offline.shape().vocabSize(), seed);
      want = offline.generateAll(requests, null);
    }
    // Arrivals out of list order and partly tied: most within the first 60 ms (the clock moves
    // 1 ms per read, a step reads it three times), two 10 s later, after the engine went idle.
    SplittableRandom rng = new SplittableRandom(seed ^ 0x5eed);
    long ms = 1_000_000L;
    long[] arrivals = new long[requests.size()];
    for (int i = 0; i < arrivals.length; ++i) {
      arrivals[i] = i >= 8 ? 10_000 * ms + i * ms : rng.nextInt(4) * 20 * ms;
    }
    StepClock clock = new StepClock(ms);
    List<TimedRequest> timed = new ArrayList<>();
    List<TokenListener> listeners = new ArrayList<>();
    long[][] tokenTimes = new long[requests.size()][];
    for (int i = 0; i < requests.size(); ++i) {
      timed.add(new TimedRequest(requests.get(i), arrivals[i]));
      tokenTimes[i] = new long[requests.get(i).maxTokens()];
      final int k = i;
      final int[] n = {0};
      listeners.add((token, text) -> tokenTimes[k][n[0]++] = clock.now);
    }
    ServeResult got;
    long start;
    try (Engine online = engine("full")) {
      start = clock.now + clock.tick;  // the call's first read
      got = online.serve(timed, listeners, clock);
    }
    assertEquals(want.size(), got.results().size());
    for (int i = 0; i < want.size(); ++i) {
      GenerationResult w = want.get(i);
      GenerationResult g = got.results().get(i);
      String what = "seed " + seed + ", request " + i;
      assertArrayEquals(w.tokens(), g.tokens(), what);
      assertEquals(w.finishReason(), g.finishReason(), what);
      assertTrue(tokenTimes[i][0] > start + arrivals[i], what + ": first token at " + (tokenTimes[i][0] - start)
          + " ns, arrival at " + arrivals[i] + " ns");
      GenerationStats s = g.stats();
      assertEquals(arrivals[i] / 1e6, s.arrivalMillis(), 1e-9, what);
      assertEquals((tokenTimes[i][0] - start) / 1e6, s.firstTokenMillis(), 1e-6, what);
      int last = g.tokens().length - 1;
      assertEquals((tokenTimes[i][last] - start) / 1e6, s.finishMillis(), 1e-6, what);
      double[] gaps = s.interTokenMillis();
      assertEquals(g.tokens().length - 1, gaps.length, what);
      for (int t = 0; t < gaps.length; ++t) {
        assertEquals((tokenTimes[i][t + 1] - tokenTimes[i][t]) / 1e6, gaps[t], 1e-6, what + ", gap " + t);
      }
    }
    // Idle before the late pair: the engine slept until the first of them arrived.
    assertTrue(clock.sleeps.contains(start + arrivals[8]), "sleeps " + clock.sleeps + ", start " + start);
    assertTrue(got.wallMillis() >= arrivals[9] / 1e6);
    assertTrue(got.busyMillis() < got.wallMillis());
    int sampled = 0;
    for (StepTrace st : got.steps()) {
      sampled += st.sampled();
      assertTrue(st.kvReadTokens() >= st.tokens() && st.sequences() >= 1, st.toString());
    }
    int outputs = want.stream().mapToInt(r -> r.tokens().length).sum();
    assertTrue(sampled >= outputs, sampled + " sampled for " + outputs + " outputs");
  }

  @Test
  void allArrivingAtOnceIsTheOfflineRunAndSlotEnginesRefuse() {
    long seed = new SplittableRandom().nextLong();
    List<GenerationResult> want;
    List<GenerationRequest> requests;
    try (Engine offline = engine("full")) {
      requests = requests(offline.shape().vocabSize(), seed);
      want = offline.generateAll(requests, null);
    }
    StepClock clock = new StepClock(1000);
    try (Engine online = engine("full")) {
      List<TimedRequest> timed = requests.stream().map(r -> new TimedRequest(r, 0)).toList();
      ServeResult got = online.serve(timed, null, clock);
      for (int i = 0; i < want.size(); ++i) {
        assertArrayEquals(want.get(i).tokens(), got.results().get(i).tokens(), "seed " + seed + ", request " + i);
        assertEquals(0, got.results().get(i).stats().arrivalMillis());
      }
      assertTrue(clock.sleeps.isEmpty(), "slept " + clock.sleeps);
      assertEquals(0, got.prefixTokensHit());
    }
    try (Engine slots = engine(null)) {
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> slots.serve(List.of(new TimedRequest(requests.get(0), 0)), null));
      assertTrue(e.getMessage().contains("cache policy"), e.getMessage());
    }
    assertThrows(IllegalArgumentException.class, () -> TimedRequest.at(-1, requests.get(0)));
  }

  // Most requests in flight at once: for each hand-over, the requests handed over by then and not yet finished.
  private static int maxInFlight(List<GenerationResult> rs) {
    int most = 0;
    for (GenerationResult a : rs) {
      double t = a.stats().arrivalMillis();
      int n = 0;
      for (GenerationResult b : rs) {
        if (b.stats().arrivalMillis() <= t && b.stats().finishMillis() > t) {
          ++n;
        }
      }
      most = Math.max(most, n);
    }
    return most;
  }

  @Test
  void aConcurrencyCapKeepsAtMostThatManyInFlightWithTheSameTokens() {
    long seed = new SplittableRandom().nextLong();
    List<GenerationRequest> requests;
    List<GenerationResult> want;
    try (Engine offline = engine("full")) {
      requests = requests(offline.shape().vocabSize(), seed);
      want = offline.generateAll(requests, null);
    }
    long ms = 1_000_000L;
    List<TimedRequest> timed = new ArrayList<>();
    for (int i = 0; i < requests.size(); ++i) {
      timed.add(new TimedRequest(requests.get(i), i < 6 ? 0 : (i - 5) * 3 * ms));
    }
    ServeResult capped;
    ServeResult free;
    try (Engine e = engine("full")) {
      capped = e.serve(timed, null, 2, new StepClock(ms));
      free = e.serve(timed, null, 0, new StepClock(ms));
      assertThrows(IllegalArgumentException.class, () -> e.serve(timed, null, -1, new StepClock(ms)));
    }
    String what = "seed " + seed;
    for (int i = 0; i < want.size(); ++i) {
      assertArrayEquals(want.get(i).tokens(), capped.results().get(i).tokens(), what + ", request " + i);
    }
    assertEquals(2, maxInFlight(capped.results()), what);
    // Without the cap every request is handed over at its arrival, so the check above can fail.
    assertTrue(maxInFlight(free.results()) > 2, what);
    // Held back requests count from their hand-over, at the finish that freed their slot.
    int heldBack = 0;
    for (int i = 0; i < timed.size(); ++i) {
      GenerationStats st = capped.results().get(i).stats();
      assertTrue(st.arrivalMillis() >= timed.get(i).arrivalNanos() / 1e6, what + ", request " + i);
      if (st.arrivalMillis() > timed.get(i).arrivalNanos() / 1e6) {
        ++heldBack;
        boolean atAFinish = false;
        for (GenerationResult r : capped.results()) {
          atAFinish |= Math.abs(r.stats().finishMillis() - st.arrivalMillis()) < 1e-9;
        }
        assertTrue(atAFinish, what + ", request " + i + " handed over at " + st.arrivalMillis() + " ms");
      }
    }
    assertTrue(heldBack >= 4, what + ": " + heldBack + " requests held back");
  }

  @Test
  void aServeCallReportsPeakPagesAndTheCacheCounters() {
    try (Engine e = engine("full")) {
      int vocab = e.shape().vocabSize();
      SplittableRandom rng = new SplittableRandom(7);
      int[] prefix = rng.ints(24, 0, vocab).toArray();
      List<TimedRequest> timed = new ArrayList<>();
      for (int i = 0; i < 3; ++i) {
        int[] p = java.util.Arrays.copyOf(prefix, 30);
        for (int j = 24; j < 30; ++j) {
          p[j] = rng.nextInt(vocab);
        }
        // One after another, so the later two find the prefix's 3 full pages of 8 tokens.
        timed.add(new TimedRequest(GenerationRequest.of(p, 4, SamplingParams.greedy()).withIgnoreEos(true),
            i * 1_000_000_000L));
      }
      ServeResult r = e.serve(timed, null, 0, new StepClock(1_000_000L));
      ServeResult.KvUsage kv = r.kv();
      assertEquals(e.kvPages(), kv.pages());
      assertEquals(8, kv.pageTokens());
      assertEquals(e.kvPageBytes(), kv.pageBytes());
      assertEquals(8L * e.shape().kvBytesPerToken(), kv.pageBytes(), "K and V of 8 tokens, all layers");
      // A sequence of 30 + 4 tokens holds 5 pages; one runs at a time.
      assertEquals(5, kv.peakPagesUsed());
      assertEquals(5 * kv.pageBytes(), kv.peakBytes());
      Map<String, Long> c = r.counters();
      assertEquals(List.of("prefix_tokens_queried", "prefix_tokens_hit", "prefix_pages_evicted", "pages_copied",
          "pages_recalled", "bytes_recalled", "reranks", "pages_evicted", "tokens_evicted"), List.copyOf(c.keySet()));
      assertEquals(3 * 24L, c.get("prefix_tokens_queried"));
      assertEquals(2 * 24L, c.get("prefix_tokens_hit"));
      assertEquals(r.prefixTokensHit(), c.get("prefix_tokens_hit"));
      assertEquals(0L, c.get("pages_recalled"));
      // Counters are per call: a second call starts from 0.
      ServeResult again = e.serve(timed.subList(0, 1), null, 0, new StepClock(1_000_000L));
      assertEquals(24L, again.counters().get("prefix_tokens_hit"));
    }
  }
}
