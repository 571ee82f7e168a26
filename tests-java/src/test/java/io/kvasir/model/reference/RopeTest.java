package io.kvasir.model.reference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class RopeTest {
  /**
   * Llama 3.1 8B (head_dim 128, theta 500000, factor 8, low 1, high 4, original 8192) and the
   * tiny default (head_dim 64, original 1024): values computed by hand from the piecewise
   * definition, in Python doubles, independently of Rope.java. Columns: index, unscaled, scaled.
   */
  private static final double[][] LLAMA31 = {
      {0, 1.0, 1.0},
      {20, 0.016560440080994446, 0.016560440080994446}, // wavelength 379 < 2048: kept
      {30, 0.0021311195369119653, 0.0013718935677611381}, // 2948: blended, s = 0.3924
      {40, 0.0002742481756762073, 3.428102195952591e-05}, // 22911 > 8192: divided by 8
      {63, 2.455140791131609e-06, 3.068925988914511e-07},
  };
  private static final double[][] TINY = {
      {9, 0.024955408670558694, 0.024955408670558694},
      {10, 0.016560440080994446, 0.010276115220618056},
      {11, 0.010989528534539826, 0.003909113982146896},
      {12, 0.0072926647372171085, 0.0013125693451919134},
      {13, 0.004839421345719893, 0.0006049276682149866},
  };

  @Test
  void llama3ScalingMatchesHandComputedFrequencies() {
    double[] plain = Rope.defaultInvFreq(128, 500000);
    double[] scaled = Rope.llama3InvFreq(128, 500000, 8, 1, 4, 8192);
    for (double[] row : LLAMA31) {
      int i = (int) row[0];
      assertEquals(row[1], plain[i], 1e-15 * row[1], "default inv_freq[" + i + "]");
      assertEquals(row[2], scaled[i], 1e-15 * row[2], "llama3 inv_freq[" + i + "]");
    }
    double[] tiny = Rope.llama3InvFreq(64, 500000, 8, 1, 4, 1024);
    for (double[] row : TINY) {
      int i = (int) row[0];
      assertEquals(row[2], tiny[i], 1e-15 * row[2], "tiny llama3 inv_freq[" + i + "]");
    }
  }

  @Test
  void defaultFrequenciesAreThetaToTheMinusTwoIOverD() {
    double[] inv = Rope.defaultInvFreq(64, 10000);
    assertEquals(32, inv.length);
    assertEquals(1.0, inv[0]);
    assertEquals(Math.pow(10000, -0.5), inv[16], 1e-16);
    assertEquals(Math.pow(10000, -62.0 / 64), inv[31], 1e-18);
  }

  /** Pairs channel j with j + d/2 (HF rotate_half), not with j + 1. */
  @Test
  void rotatesHalvesNotNeighbours() {
    double[] x = new double[8];
    x[0] = 1; // channel 0 pairs with channel 4
    double[] inv = {1, 0, 0, 0};
    Rope.rotate(x, 0, 8, 1, inv);
    assertEquals(Math.cos(1), x[0], 1e-15);
    assertEquals(Math.sin(1), x[4], 1e-15);
    assertEquals(0, x[1]);
  }

  /** q(m).k(n) after RoPE depends only on m - n: the property that makes attention relative. */
  @Test
  void scoresDependOnlyOnPositionDifferences() {
    SplittableRandom rng = new SplittableRandom(3);
    int d = 64;
    for (double[] inv : new double[][] {Rope.defaultInvFreq(d, 10000), Rope.llama3InvFreq(d, 500000, 8, 1, 4, 1024)}) {
      double[] q = new double[d];
      double[] k = new double[d];
      for (int i = 0; i < d; i++) {
        q[i] = rng.nextDouble() - 0.5;
        k[i] = rng.nextDouble() - 0.5;
      }
      for (int trial = 0; trial < 50; trial++) {
        int m = rng.nextInt(0, 2000);
        int n = rng.nextInt(0, 2000);
        int shift = rng.nextInt(1, 5000);
        double base = score(q, k, m, n, inv);
        assertEquals(base, score(q, k, m + shift, n + shift, inv), 1e-9, "shift " + shift);
      }
      // ... and does depend on the difference (or the property above would be vacuous).
      assertTrue(Math.abs(score(q, k, 10, 3, inv) - score(q, k, 10, 4, inv)) > 1e-6);
    }
  }

  private static double score(double[] q, double[] k, long m, long n, double[] inv) {
    double[] a = q.clone();
    double[] b = k.clone();
    Rope.rotate(a, 0, a.length, m, inv);
    Rope.rotate(b, 0, b.length, n, inv);
    double dot = 0;
    for (int i = 0; i < a.length; i++) {
      dot += a[i] * b[i];
    }
    return dot;
  }
}
