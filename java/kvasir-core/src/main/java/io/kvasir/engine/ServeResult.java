package io.kvasir.engine;

import java.util.List;
import java.util.Map;

/**
 * The outcome of {@link Engine#serve}: one result per request, in the order given, and what the
 * run did as a whole.
 *
 * @param results             per request, with arrival and token times in its stats (the arrival
 *                            is when the request was handed to the engine: its scheduled arrival,
 *                            or later when a concurrency cap held it back)
 * @param wallMillis          from the start of the call to the end of the last step
 * @param preemptions         sequences preempted to free pages (recomputed later)
 * @param prefixTokensQueried prompt tokens looked up in the prefix cache during the call
 * @param prefixTokensHit     of those, the tokens whose K and V came from the cache
 * @param steps               every engine step, in order
 * @param kv                  the paged cache's size and its peak use during the call
 * @param counters            the cache manager's and the policy's counters over the call
 *                            ({@link io.kvasir.policy.spi.PolicyCounters}), in a stable order
 */
public record ServeResult(List<GenerationResult> results, double wallMillis, long preemptions,
    long prefixTokensQueried, long prefixTokensHit, List<StepTrace> steps, KvUsage kv, Map<String, Long> counters) {

  /**
   * The paged cache during a call.
   *
   * @param pages         pages of the device pool
   * @param pageTokens    tokens per page
   * @param pageBytes     device bytes of one page (all layers, K and V)
   * @param peakPagesUsed most pages in use (referenced) after any step's reservation
   */
  public record KvUsage(int pages, int pageTokens, long pageBytes, int peakPagesUsed) {
    /** No paged cache (results built by hand). */
    public static final KvUsage NONE = new KvUsage(0, 0, 0, 0);

    public long peakBytes() {
      return peakPagesUsed * pageBytes;
    }

    public long capacityBytes() {
      return pages * pageBytes;
    }

    /** The cache's storage per token slot; NaN without pages. */
    public double bytesPerToken() {
      return pageTokens > 0 ? (double) pageBytes / pageTokens : Double.NaN;
    }
  }

  public ServeResult {
    results = List.copyOf(results);
    steps = List.copyOf(steps);
    kv = kv == null ? KvUsage.NONE : kv;
    counters = counters == null ? Map.of() : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(counters));
  }

  /** A result without cache usage or counters. */
  public ServeResult(List<GenerationResult> results, double wallMillis, long preemptions, long prefixTokensQueried,
      long prefixTokensHit, List<StepTrace> steps) {
    this(results, wallMillis, preemptions, prefixTokensQueried, prefixTokensHit, steps, KvUsage.NONE, Map.of());
  }

  /** Share of the queried prompt tokens found in the prefix cache; NaN when nothing was queried. */
  public double prefixHitRate() {
    return prefixTokensQueried > 0 ? (double) prefixTokensHit / prefixTokensQueried : Double.NaN;
  }

  /** Time spent in steps, in milliseconds (the rest of {@link #wallMillis} waited for arrivals). */
  public double busyMillis() {
    long sum = 0;
    for (StepTrace s : steps) {
      sum += s.nanos();
    }
    return sum / 1e6;
  }
}
