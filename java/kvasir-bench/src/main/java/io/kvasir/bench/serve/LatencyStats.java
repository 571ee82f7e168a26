package io.kvasir.bench.serve;

import java.util.Arrays;

/**
 * Mean and percentiles of a sample, percentiles interpolated linearly between the closest ranks
 * (numpy's default, which vLLM's serving benchmark reports): {@code p} of {@code n} sorted values
 * sits at rank {@code p / 100 * (n - 1)}. An empty sample gives NaN throughout.
 */
public record LatencyStats(int count, double mean, double p50, double p90, double p99, double min, double max) {

  public static LatencyStats of(double[] values) {
    if (values.length == 0) {
      return new LatencyStats(0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN);
    }
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    double sum = 0;
    for (double v : sorted) {
      sum += v;
    }
    return new LatencyStats(sorted.length, sum / sorted.length, percentile(sorted, 50), percentile(sorted, 90),
        percentile(sorted, 99), sorted[0], sorted[sorted.length - 1]);
  }

  /** The {@code p}-th percentile (0..100) of ascending {@code sorted} values. */
  public static double percentile(double[] sorted, double p) {
    if (!(p >= 0 && p <= 100)) {
      throw new IllegalArgumentException("percentile " + p + " must be in [0, 100]");
    }
    if (sorted.length == 0) {
      return Double.NaN;
    }
    double rank = p / 100 * (sorted.length - 1);
    int lo = (int) Math.floor(rank);
    int hi = Math.min(lo + 1, sorted.length - 1);
    double frac = rank - lo;
    return sorted[lo] + frac * (sorted[hi] - sorted[lo]);
  }
}
