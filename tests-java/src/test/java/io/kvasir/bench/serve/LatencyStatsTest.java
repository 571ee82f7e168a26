package io.kvasir.bench.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Percentiles and means against a naive computation (selection by repeated minimum) on random data. */
class LatencyStatsTest {
  // The k-th smallest value (0-based) by removing the minimum k times: slow and obviously right.
  private static double kthSmallest(double[] values, int k) {
    List<Double> left = new ArrayList<>();
    for (double v : values) {
      left.add(v);
    }
    double min = Double.NaN;
    for (int i = 0; i <= k; ++i) {
      int at = 0;
      for (int j = 1; j < left.size(); ++j) {
        if (left.get(j) < left.get(at)) {
          at = j;
        }
      }
      min = left.remove(at);
    }
    return min;
  }

  private static double naivePercentile(double[] values, double p) {
    double rank = p / 100 * (values.length - 1);
    int lo = (int) rank;
    double a = kthSmallest(values, lo);
    if (rank == lo) {
      return a;
    }
    double b = kthSmallest(values, lo + 1);
    return a + (rank - lo) * (b - a);
  }

  @Test
  void percentilesAndMeanMatchTheNaiveComputation() {
    long seed = new SplittableRandom().nextLong();
    SplittableRandom rng = new SplittableRandom(seed);
    for (int trial = 0; trial < 60; ++trial) {
      int n = 1 + rng.nextInt(trial < 10 ? 5 : 300);
      double[] v = new double[n];
      double sum = 0;
      for (int i = 0; i < n; ++i) {
        // Latency-like: mostly small, a heavy tail, some ties.
        v[i] = rng.nextInt(8) == 0 ? Math.floor(rng.nextDouble() * 4) : -Math.log(1 - rng.nextDouble()) * 30;
        sum += v[i];
      }
      LatencyStats s = LatencyStats.of(v);
      String what = "seed " + seed + ", trial " + trial + ", n " + n;
      assertEquals(n, s.count(), what);
      assertEquals(sum / n, s.mean(), 1e-9 * Math.max(1, Math.abs(sum / n)), what);
      assertEquals(naivePercentile(v, 50), s.p50(), 1e-9, what);
      assertEquals(naivePercentile(v, 90), s.p90(), 1e-9, what);
      assertEquals(naivePercentile(v, 99), s.p99(), 1e-9, what);
      assertEquals(kthSmallest(v, 0), s.min(), what);
      assertEquals(kthSmallest(v, n - 1), s.max(), what);
      assertTrue(s.min() <= s.p50() && s.p50() <= s.p90() && s.p90() <= s.p99() && s.p99() <= s.max(), what);
    }
  }

  @Test
  void knownValuesAndEmptySamples() {
    // numpy.percentile: [1, 2, 3, 4] -> 2.5; 1..10 at 90 -> 9.1; 1..100 at 99 -> 99.01.
    assertEquals(2.5, LatencyStats.of(new double[] {4, 1, 3, 2}).p50(), 1e-12);
    double[] ten = new double[10];
    double[] hundred = new double[100];
    for (int i = 0; i < 100; ++i) {
      hundred[i] = 100 - i;
      if (i < 10) {
        ten[i] = i + 1;
      }
    }
    assertEquals(9.1, LatencyStats.of(ten).p90(), 1e-12);
    assertEquals(99.01, LatencyStats.of(hundred).p99(), 1e-9);
    assertEquals(50.5, LatencyStats.of(hundred).mean(), 1e-12);
    LatencyStats one = LatencyStats.of(new double[] {7});
    assertEquals(7, one.p50());
    assertEquals(7, one.p99());
    LatencyStats none = LatencyStats.of(new double[0]);
    assertEquals(0, none.count());
    assertTrue(Double.isNaN(none.mean()) && Double.isNaN(none.p99()));
    assertThrows(IllegalArgumentException.class, () -> LatencyStats.percentile(new double[] {1}, 101));
  }
}
