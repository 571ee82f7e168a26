package io.kvasir.engine;

import io.kvasir.policy.spi.PolicyCounters;
import java.util.Map;

/**
 * What an {@link EngineLoop} has served, for {@link LoopMetrics}: counters and histograms written
 * by the loop thread, gauges copied from the scheduler and the cache at each step boundary, read
 * by any thread. Every method holds this object's monitor.
 */
final class LoopStats {
  private final PagedRun run;
  private final Map<String, Long> counters0;
  private final long prefixQueried0;
  private final long prefixHit0;
  private int running;
  private int pagesUsed;
  private long preemptionsBefore;  // of schedulers replaced by PagedRun.reset()
  private long preemptions;
  private long prefixQueried;
  private long prefixHit;
  private Map<String, Long> counters = Map.of();
  private long promptTokens;
  private long generationTokens;
  private long finished;
  private long cancelled;
  private long failed;
  private final LoopMetrics.Recorder ttft = new LoopMetrics.Recorder(LoopMetrics.TTFT_BOUNDS_SECONDS);
  private final LoopMetrics.Recorder interToken = new LoopMetrics.Recorder(LoopMetrics.INTER_TOKEN_BOUNDS_SECONDS);
  private final LoopMetrics.Recorder e2e = new LoopMetrics.Recorder(LoopMetrics.E2E_BOUNDS_SECONDS);

  /** Counts from now on (the run's step loop has begun). */
  LoopStats(PagedRun run) {
    this.run = run;
    this.counters0 = run.counters();
    this.prefixQueried0 = run.kv().prefixTokensQueried();
    this.prefixHit0 = run.kv().prefixTokensHit();
    this.pagesUsed = run.kv().pool().usedPages();
  }

  /** Loop thread, at a step boundary. */
  synchronized void updateGauges() {
    running = run.scheduler().runningCount();
    pagesUsed = run.kv().pool().usedPages();
    preemptions = preemptionsBefore + run.scheduler().preemptions();
    prefixQueried = run.kv().prefixTokensQueried() - prefixQueried0;
    prefixHit = run.kv().prefixTokensHit() - prefixHit0;
    counters = PolicyCounters.difference(counters0, run.counters());
  }

  /** Loop thread, before {@link PagedRun#reset} drops the scheduler (and its preemption count). */
  synchronized void schedulerReplaced() {
    preemptionsBefore += run.scheduler().preemptions();
  }

  synchronized void token() {
    ++generationTokens;
  }

  /** A sample ended: latencies of STOP and LENGTH ones go to the histograms. */
  synchronized void ended(int sample, GenerationResult result) {
    GenerationStats st = result.stats();
    if (sample == 0) {  // the samples share one prompt
      promptTokens += st.promptTokens();
    }
    if (result.finishReason() == FinishReason.CANCELLED) {
      ++cancelled;
      return;
    }
    ++finished;
    ttft.observe(st.ttftMillis() / 1e3);
    e2e.observe(st.latencyMillis() / 1e3);
    for (double gap : st.interTokenMillis()) {
      interToken.observe(gap / 1e3);
    }
  }

  synchronized void failed() {
    ++failed;
  }

  synchronized LoopMetrics snapshot(int waiting) {
    return new LoopMetrics(running, waiting, pagesUsed, run.kv().pool().capacity(), 0, 0, prefixQueried, prefixHit,
        preemptions, promptTokens, generationTokens, finished, cancelled, failed, counters, ttft.snapshot(),
        interToken.snapshot(), e2e.snapshot());
  }
}
