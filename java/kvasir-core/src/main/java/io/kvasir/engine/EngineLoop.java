package io.kvasir.engine;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Online serving: requests submitted from any thread, run by one background thread that steps the
 * engine's continuous-batching scheduler ({@link PagedRun}'s step loop), taking new requests and
 * cancellations between steps.
 *
 * <pre>{@code
 * try (EngineLoop loop = EngineLoop.start(engine, 256)) {
 *   RequestHandle h = loop.submit(request, 1, listener);   // from any thread
 *   ...
 * }
 * }</pre>
 *
 * <p>Threading: {@link #submit}, {@link RequestHandle#cancel}, {@link #metrics} and
 * {@link #shutdown} are thread-safe and never wait for a step ({@code shutdown} waits for the loop
 * to end). Listeners run on the loop thread and must not block. The loop thread sleeps while
 * there is nothing to do and wakes on submit, cancel and shutdown. While a loop runs, the
 * engine's own generation calls ({@link Engine#generateAll} and the rest) throw
 * {@link IllegalStateException}: one scheduler owns the pages; {@link Engine#close} shuts the loop
 * down first.
 *
 * <p>Tokens: a request's tokens are those {@link Engine#generateAll} gives for it with the same
 * request ids (greedy; seeded sampling is keyed by (seed, request id, position), and
 * {@link RequestHandle#id} is the id this loop drew from the engine's counter). Batching and
 * arrival change timing only.
 *
 * <p>Failures: a step that throws fails every queued and running request ({@code onError}), frees
 * their pages and the loop goes on; a listener that throws fails its own request only.
 */
public final class EngineLoop implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(EngineLoop.class);

  private final Engine engine;
  private final PagedRun run;
  private final int maxWaiting;
  private final long kvBytesPerToken;
  private final long startNanos;
  private final Thread thread;

  // Hand-over between submitters and the loop thread.
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition wake = lock.newCondition();
  private final ArrayDeque<Req> pending = new ArrayDeque<>();  // submitted, not yet given to the scheduler
  private final ArrayDeque<Req> cancels = new ArrayDeque<>();
  private boolean accepting = true;
  private boolean abort;             // shutdown's deadline passed: cancel everything
  private int schedulerWaiting;      // the scheduler's waiting queue at the last step boundary (requests)

  // Loop thread only.
  private final Map<Long, Req> bySampleId = new HashMap<>();
  private final List<Req> listenerFailures = new ArrayList<>();

  private final LoopStats stats;

  private EngineLoop(Engine engine, PagedRun run, int maxWaiting) {
    this.engine = engine;
    this.run = run;
    this.maxWaiting = maxWaiting;
    this.kvBytesPerToken = engine.shape().kvBytesPerToken();
    this.startNanos = System.nanoTime();
    run.begin(EngineClock.SYSTEM);
    this.stats = new LoopStats(run);
    this.thread = new Thread(this::loop, "kvasir-engine-loop");
    this.thread.setDaemon(true);
  }

  /**
   * Starts the loop thread over an engine built with a cache policy.
   *
   * @param maxWaiting the most requests queued (submitted and not yet running) before
   *     {@link #submit} rejects (>= 1)
   * @throws IllegalStateException when the engine has no cache policy, or another loop runs on it
   */
  public static EngineLoop start(Engine engine, int maxWaiting) {
    Objects.requireNonNull(engine, "engine");
    if (maxWaiting < 1) {
      throw new IllegalArgumentException("maxWaiting=" + maxWaiting + " must be >= 1");
    }
    EngineLoop loop = engine.attachLoop(r -> new EngineLoop(engine, r, maxWaiting));
    loop.thread.start();
    LOG.info("engine loop started on {} (max {} waiting)", engine.modelName(), maxWaiting);
    return loop;
  }

  /**
   * Queues a request as {@code n} samples sharing the prompt (n > 1: the prompt is prefilled once).
   * The listener hears every token of every sample, then one {@code onFinish} per sample.
   *
   * @throws RejectedExecutionException when {@code maxWaiting} requests are queued already
   * @throws IllegalStateException when the loop is shutting down
   * @throws IllegalArgumentException when the prompt leaves no room for output in the context, the
   *     request could not fit the KV cache even alone, stop strings come without a tokenizer, or
   *     {@code n} is not in [1, {@link Engine#maxBatch()}]
   */
  public RequestHandle submit(GenerationRequest request, int n, StreamListener listener) {
    Objects.requireNonNull(request, "request");
    Objects.requireNonNull(listener, "listener");
    if (n < 1 || n > engine.maxBatch()) {
      throw new IllegalArgumentException("n=" + n + " samples must be in [1, " + engine.maxBatch() + "]");
    }
    run.checkRequest(request, engine.hasTokenizer());
    lock.lock();
    try {
      if (!accepting) {
        throw new IllegalStateException("the engine loop is shutting down");
      }
      if (pending.size() + schedulerWaiting >= maxWaiting) {
        throw new RejectedExecutionException("the engine loop has " + (pending.size() + schedulerWaiting)
            + " requests waiting (max " + maxWaiting + ")");
      }
      Req r = new Req(request, n, listener, engine.nextRequestIds(n));
      pending.add(r);
      wake.signal();
      return r;
    } finally {
      lock.unlock();
    }
  }

  /** A snapshot of the loop's gauges (as of the last step boundary), counters and histograms. */
  public LoopMetrics metrics() {
    int waiting;
    lock.lock();
    try {
      waiting = pending.size() + schedulerWaiting;
    } finally {
      lock.unlock();
    }
    return stats.snapshot(waiting);
  }

  /**
   * Stops accepting requests, lets the in-flight ones run until {@code deadline}, then cancels the
   * rest (their listeners get {@code onFinish} with {@link FinishReason#CANCELLED}), ends the loop
   * thread and detaches from the engine; every page the loop held is back in the pool (the prefix
   * cache keeps its pages). Idempotent; a call from a listener (the loop thread) only starts it.
   */
  public void shutdown(Duration deadline) {
    Objects.requireNonNull(deadline, "deadline");
    lock.lock();
    try {
      accepting = false;
      wake.signal();
    } finally {
      lock.unlock();
    }
    if (Thread.currentThread() == thread) {
      return;
    }
    boolean interrupted = false;
    try {
      thread.join(Math.max(1, deadline.toMillis()));
    } catch (InterruptedException e) {
      interrupted = true;
    }
    if (thread.isAlive()) {
      lock.lock();
      try {
        abort = true;
        wake.signal();
      } finally {
        lock.unlock();
      }
      while (thread.isAlive()) {
        try {
          thread.join();
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
    }
    engine.detachLoop(this);
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  /** {@link #shutdown} with 30 seconds for in-flight requests. */
  @Override
  public void close() {
    shutdown(Duration.ofSeconds(30));
  }

  /** Tests: the step loop (its fault hook). */
  PagedRun pagedRun() {
    return run;
  }

  // ---- The loop thread.

  private void loop() {
    List<Req> arrived = new ArrayList<>();
    List<Req> cancelled = new ArrayList<>();
    List<Long> finishedIds = new ArrayList<>();
    while (true) {
      boolean abortNow;
      lock.lock();
      try {
        while (pending.isEmpty() && cancels.isEmpty() && !abort && !run.hasWork() && accepting) {
          wake.awaitUninterruptibly();
        }
        if (!accepting && pending.isEmpty() && !run.hasWork()) {
          break;
        }
        arrived.addAll(pending);
        pending.clear();
        cancelled.addAll(cancels);
        cancels.clear();
        abortNow = abort;
      } finally {
        lock.unlock();
      }
      try {
        iterate(arrived, cancelled, abortNow, finishedIds);
      } catch (RuntimeException | Error e) {  // a step, or the loop's own bookkeeping: fail what is live, go on
        failEverything(e, arrived);
      }
      arrived.clear();
      cancelled.clear();
      updateGauges();
    }
    updateGauges();
    engine.detachLoop(this);  // also when shutdown was only started (from a listener)
    LOG.info("engine loop stopped");
  }

  // One pass between steps: cancellations, arrivals, then one step when anything is queued or running.
  private void iterate(List<Req> arrived, List<Req> cancelled, boolean abortNow, List<Long> finishedIds) {
    for (Req r : cancelled) {
      cancelRequest(r);
    }
    for (Req r : arrived) {
      if (abortNow || r.cancelRequested) {
        r.finishAllCancelled();
      } else {
        admit(r);
      }
    }
    if (abortNow) {
      for (Req r : new ArrayList<>(bySampleId.values())) {
        cancelRequest(r);
      }
    }
    if (!run.hasWork()) {
      return;
    }
    finishedIds.clear();
    run.stepOnce(finishedIds);
    for (Req r : listenerFailures) {  // first: a failed request gets no onFinish
      failRequest(r, r.listenerError);
    }
    listenerFailures.clear();
    for (long id : finishedIds) {
      Req r = bySampleId.remove(id);
      if (r != null) {
        r.finishSample((int) (id - r.baseId));
      }
    }
  }

  private void admit(Req r) {
    List<SequenceOutput> samples = new ArrayList<>(r.n);
    try {
      for (int j = 0; j < r.n; ++j) {
        SequenceOutput s = new SequenceOutput(r.request, null, r.baseId + j, engine.codec());
        s.stream = r.guard;
        s.sample = j;
        samples.add(s);
      }
      run.addRequest(samples);
    } catch (RuntimeException e) {  // checked at submit; the pool cannot have shrunk since
      r.fail(e);
      return;
    }
    r.samples = samples.toArray(new SequenceOutput[0]);
    for (int j = 0; j < r.n; ++j) {
      bySampleId.put(r.baseId + j, r);
    }
  }

  // Cancels the live samples of a request: their pages are freed when the next step is planned.
  private void cancelRequest(Req r) {
    if (r.samples == null) {
      r.finishAllCancelled();  // not admitted (aborted while queued)
      return;
    }
    for (int j = 0; j < r.n; ++j) {
      if (bySampleId.remove(r.baseId + j) != null) {
        run.cancel(r.baseId + j);
        r.samples[j].finish = FinishReason.CANCELLED;
        r.finishSample(j);
      }
    }
  }

  private void failRequest(Req r, Throwable error) {
    if (r.samples != null) {
      for (int j = 0; j < r.n; ++j) {
        if (bySampleId.remove(r.baseId + j) != null) {
          run.cancel(r.baseId + j);
        }
      }
    }
    r.fail(error);
  }

  private void failEverything(Throwable e, List<Req> arrived) {
    LOG.error("engine step failed; failing {} live requests", new java.util.HashSet<>(bySampleId.values()).size(), e);
    stats.schedulerReplaced();
    run.reset();
    List<Req> live = new ArrayList<>(new java.util.LinkedHashSet<>(bySampleId.values()));
    bySampleId.clear();
    live.addAll(arrived);  // those not admitted yet (fail() skips the ones that ended)
    for (Req r : live) {
      r.fail(e);
    }
    listenerFailures.clear();
  }

  private void updateGauges() {
    int waitingRequests = run.scheduler().waitingCount();
    lock.lock();
    try {
      schedulerWaiting = waitingRequests;
    } finally {
      lock.unlock();
    }
    stats.updateGauges();
  }

  /** One submitted request; its mutable state belongs to the loop thread unless noted. */
  private final class Req implements RequestHandle {
    final GenerationRequest request;
    final int n;
    final StreamListener listener;
    final long baseId;
    final long submitNanos = System.nanoTime();
    final StreamListener guard = new Guard();
    SequenceOutput[] samples;  // once admitted
    int terminal;              // samples that got onFinish
    boolean failed;
    Throwable listenerError;
    volatile boolean cancelRequested;
    volatile boolean done;

    Req(GenerationRequest request, int n, StreamListener listener, long baseId) {
      this.request = request;
      this.n = n;
      this.listener = listener;
      this.baseId = baseId;
    }

    @Override
    public long id() {
      return baseId;
    }

    @Override
    public void cancel() {
      if (done || cancelRequested) {
        return;
      }
      cancelRequested = true;
      lock.lock();
      try {
        cancels.add(this);
        wake.signal();
      } finally {
        lock.unlock();
      }
    }

    @Override
    public boolean isDone() {
      return done;
    }

    // Not admitted: every sample ends cancelled, without tokens.
    void finishAllCancelled() {
      if (done) {
        return;
      }
      for (int j = 0; j < n; ++j) {
        SequenceOutput s = new SequenceOutput(request, null, baseId + j, engine.codec());
        s.finish = FinishReason.CANCELLED;
        deliverFinish(j, s);
      }
    }

    void finishSample(int j) {
      deliverFinish(j, samples[j]);
    }

    private void deliverFinish(int j, SequenceOutput s) {
      if (failed) {
        return;
      }
      GenerationResult result = s.result(startNanos, submitNanos, kvBytesPerToken);
      stats.ended(j, result);
      if (++terminal == n) {
        done = true;
      }
      try {
        listener.onFinish(j, result);
      } catch (RuntimeException e) {
        LOG.warn("request {}: the listener's onFinish threw", baseId, e);
      }
    }

    void fail(Throwable error) {
      if (done || failed) {
        return;
      }
      failed = true;
      done = true;
      stats.failed();
      try {
        listener.onError(error);
      } catch (RuntimeException e) {
        LOG.warn("request {}: the listener's onError threw", baseId, e);
      }
    }

    /** Catches what the caller's listener throws, so that a step never sees it. */
    private final class Guard implements StreamListener {
      @Override
      public void onToken(int sample, int token, String textDelta, TokenLogprobs logprobs) {
        stats.token();
        if (listenerError != null) {
          return;
        }
        try {
          listener.onToken(sample, token, textDelta, logprobs);
        } catch (RuntimeException e) {
          LOG.warn("request {}: the listener threw; cancelling the request", baseId, e);
          listenerError = e;
          listenerFailures.add(Req.this);
        }
      }

      @Override
      public void onFinish(int sample, GenerationResult result) {
        throw new UnsupportedOperationException();  // delivered by Req
      }
    }
  }
}
