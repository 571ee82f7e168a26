package io.kvasir.engine;

import java.util.Arrays;
import java.util.Map;

/**
 * A snapshot of an {@link EngineLoop} for a metrics endpoint (Prometheus, vLLM's names in mind).
 * Counters run from the loop's start; gauges are as of the last step boundary.
 *
 * @param running               sequences in the running batch
 * @param waiting               requests queued (submitted, not yet admitted to the running batch)
 * @param kvPagesUsedDevice     device pages referenced by live sequences
 * @param kvPagesTotalDevice    device pages of the pool
 * @param kvPagesUsedHost       host-tier pages in use (0: no host tier yet)
 * @param kvPagesTotalHost      host-tier pages (0: no host tier yet)
 * @param prefixTokensQueried   prompt tokens looked up in the prefix cache
 * @param prefixTokensHit       of those, tokens whose K and V came from the cache
 * @param preemptions           sequences preempted to free pages
 * @param promptTokens          prompt tokens of ended requests, counted once per request when its
 *                              sample 0 ends (cancelled ones included, failed ones not)
 * @param generationTokens      tokens generated and streamed (all samples, cancelled and failed ones included)
 * @param requestsFinished      samples that ended with STOP or LENGTH
 * @param requestsCancelled     samples that ended with CANCELLED
 * @param requestsFailed        requests that ended with onError
 * @param counters              the cache manager's and the policy's counters since the loop started
 * @param ttft                  seconds from submit to the first token, per finished (STOP/LENGTH) sample
 * @param interToken            seconds between consecutive tokens of finished samples
 * @param e2e                   seconds from submit to the last token, per finished sample
 */
public record LoopMetrics(int running, int waiting, int kvPagesUsedDevice, int kvPagesTotalDevice, int kvPagesUsedHost,
    int kvPagesTotalHost, long prefixTokensQueried, long prefixTokensHit, long preemptions, long promptTokens,
    long generationTokens, long requestsFinished, long requestsCancelled, long requestsFailed,
    Map<String, Long> counters, Histogram ttft, Histogram interToken, Histogram e2e) {

  /** vLLM's {@code time_to_first_token_seconds} buckets. */
  public static final double[] TTFT_BOUNDS_SECONDS = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
      0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
  /** vLLM's {@code inter_token_latency_seconds} buckets. */
  public static final double[] INTER_TOKEN_BOUNDS_SECONDS = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
      0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
  /** vLLM's {@code e2e_request_latency_seconds} buckets. */
  public static final double[] E2E_BOUNDS_SECONDS = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
      40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

  public LoopMetrics {
    counters = Map.copyOf(counters);
  }

  /**
   * A Prometheus histogram: {@code cumulativeCounts[i]} observations {@code <= boundsSeconds[i]},
   * and a last element for {@code +Inf} equal to {@code count}.
   */
  public record Histogram(double[] boundsSeconds, long[] cumulativeCounts, double sumSeconds, long count) {
    public Histogram {
      boundsSeconds = boundsSeconds.clone();
      cumulativeCounts = cumulativeCounts.clone();
      if (cumulativeCounts.length != boundsSeconds.length + 1) {
        throw new IllegalArgumentException(cumulativeCounts.length + " counts for " + boundsSeconds.length
            + " bounds (one more for +Inf is needed)");
      }
    }

    @Override
    public double[] boundsSeconds() {
      return boundsSeconds.clone();
    }

    @Override
    public long[] cumulativeCounts() {
      return cumulativeCounts.clone();
    }

    @Override
    public String toString() {
      return "Histogram[count=" + count + ", sum=" + sumSeconds + ", cumulative=" + Arrays.toString(cumulativeCounts)
          + "]";
    }
  }

  /** Accumulates a histogram; guarded by the loop's metrics lock. */
  static final class Recorder {
    private final double[] bounds;
    private final long[] counts;  // per bucket, not cumulative; last: above every bound
    private double sum;
    private long count;

    Recorder(double[] bounds) {
      this.bounds = bounds.clone();
      this.counts = new long[bounds.length + 1];
    }

    void observe(double seconds) {
      int i = 0;
      while (i < bounds.length && seconds > bounds[i]) {
        ++i;
      }
      ++counts[i];
      sum += seconds;
      ++count;
    }

    Histogram snapshot() {
      long[] cumulative = new long[counts.length];
      long c = 0;
      for (int i = 0; i < counts.length; ++i) {
        c += counts[i];
        cumulative[i] = c;
      }
      return new Histogram(bounds, cumulative, sum, count);
    }
  }
}
