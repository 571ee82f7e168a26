package io.kvasir.engine;

import java.util.List;

/**
 * The outcome of {@link Engine#serve}: one result per request, in the order given, and what the
 * run did as a whole.
 *
 * @param results             per request, with arrival and token times in its stats
 * @param wallMillis          from the start of the call to the end of the last step
 * @param preemptions         sequences preempted to free pages (recomputed later)
 * @param prefixTokensQueried prompt tokens looked up in the prefix cache during the call
 * @param prefixTokensHit     of those, the tokens whose K and V came from the cache
 * @param steps               every engine step, in order
 */
public record ServeResult(List<GenerationResult> results, double wallMillis, long preemptions,
    long prefixTokensQueried, long prefixTokensHit, List<StepTrace> steps) {
  public ServeResult {
    results = List.copyOf(results);
    steps = List.copyOf(steps);
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
