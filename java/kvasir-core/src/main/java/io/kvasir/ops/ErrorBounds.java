package io.kvasir.ops;

import io.kvasir.nativeapi.AttentionShape;
import io.kvasir.nativeapi.DType;

/**
 * Per-element error bounds for the native attention-state kernels against {@link ReferenceOps}.
 *
 * <p>The kernels compute in fp32 (unit roundoff u = 2^-24) in every dtype; bf16 outputs are
 * rounded once more at the end (unit roundoff 2^-8). The bounds below are worst-case, first-order
 * forward error bounds that hold for any summation order, any blocking into splits and any
 * number of online-softmax rescales, so they do not depend on how a backend schedules the work.
 * They are far above the errors seen in practice (typically 100x or more), yet far below what a
 * real bug produces (a wrong head mapping, a dropped block of keys, a missing rescale, a stale or
 * unwritten element), which is what they are for. Notation per output row:
 * <ul>
 *   <li>{@code A_j = sum_i p_i |x_ij|}: the exact softmax-weighted average of the absolute values
 *       being averaged ({@code x} = states' o for merges, v for attention), {@code p_i} the exact
 *       normalized weights. Every rounding in a weighted average is bounded relative to it.
 *   <li>A relative perturbation {@code delta} of every weight moves the normalized weights by at
 *       most {@code 2 delta} relative, so the output by at most {@code 2 delta A_j}.
 *   <li>A sum of n terms in floating point, in any order, is off by at most {@code n u} times
 *       the sum of the terms' magnitudes.
 * </ul>
 * A factor {@link #SAFETY} = 2 covers the second-order terms, elementary functions that are
 * accurate to 2 ulp rather than correctly rounded (glibc exp/log, CUDA expf/exp2f/logf/log2f) and
 * the extra rounding of base-2 conversions (log2 e, ln 2) some kernels use.
 */
public final class ErrorBounds {
  /** Unit roundoff of fp32. */
  public static final double U = 0x1p-24;

  /** See the class comment. */
  public static final double SAFETY = 2;

  private ErrorBounds() {}

  /** Absolute tolerances per element of {@code o} and {@code lse}; 0 demands an exact match. */
  public record Tolerance(double[] o, double[] lse) {}

  /**
   * Bounds of an N-way merge (N = 2 for the pair and in-place merges). Per row, with m the largest
   * input lse and {@code D} the largest {@code m - lse_i} over non-empty inputs:
   * <ul>
   *   <li>weights {@code w_i = exp(lse_i - m)}: the rounded difference is off by at most
   *       {@code u D}, exp adds 2u, so {@code delta <= u (D + 3)};
   *   <li>accumulation and weight sum: N terms each, {@code 2 N u}; the division: u.
   * </ul>
   * So {@code |o - o_ref| <= SAFETY u (2D + 2N + 7) A_j}. For lse = m + ln S: S is off by
   * {@code delta + N u} relative, which ln turns into the same absolute error; ln itself is off
   * by {@code 2u |ln S|}; the final addition and any base conversion by {@code 3u |lse|}:
   * {@code SAFETY u (D + N + 4 + 2 |ln S| + 3 |lse|)}. Rows whose inputs are all empty must be
   * exactly o = 0, lse = -inf.
   *
   * @param o inputs {@code [numStates][rows][headDim]}, as the kernel sees them
   * @param lse inputs {@code [numStates][rows]}
   */
  public static Tolerance mergeStates(int numStates, int rows, int headDim, double[] o, double[] lse,
      ReferenceOps.State ref, DType outDtype) {
    double[] tolO = new double[rows * headDim];
    double[] tolLse = new double[rows];
    for (int r = 0; r < rows; r++) {
      double m = Double.NEGATIVE_INFINITY;
      for (int i = 0; i < numStates; i++) {
        m = Math.max(m, lse[i * rows + r]);
      }
      if (m == Double.NEGATIVE_INFINITY || Double.isNaN(m)) {
        continue; // exact: the empty state (or NaN, which must stay NaN)
      }
      double spread = 0;
      for (int i = 0; i < numStates; i++) {
        double l = lse[i * rows + r];
        if (l != Double.NEGATIVE_INFINITY) {
          spread = Math.max(spread, m - l);
        }
      }
      double relative = SAFETY * U * (2 * spread + 2 * numStates + 7);
      for (int j = 0; j < headDim; j++) {
        double weightedAbs = 0;
        for (int i = 0; i < numStates; i++) {
          double l = lse[i * rows + r];
          if (l != Double.NEGATIVE_INFINITY) {
            weightedAbs += Math.exp(l - ref.lse()[r]) * Math.abs(o[(i * rows + r) * headDim + j]);
          }
        }
        int e = r * headDim + j;
        tolO[e] = output(relative * weightedAbs, ref.o()[e], outDtype);
      }
      double lnS = ref.lse()[r] - m;
      tolLse[r] = SAFETY * U * (spread + numStates + 4 + 2 * Math.abs(lnS) + 3 * Math.abs(ref.lse()[r]));
    }
    return new Tolerance(tolO, tolLse);
  }

  /**
   * Bounds of single-query attention. Per query head (row), over L keys with exact scores
   * {@code s_t}, {@code T = max_t scale sum_j |q_j k_tj|}, score range {@code R = max s - min s}:
   * <ul>
   *   <li>scores: a d-term dot product, the scale (and a base-2 factor) and conversions, so each
   *       is off by at most {@code E = (d + 3) u T}; normalized weights then move by {@code 2E};
   *   <li>weights relative to the running max: the rounded exponent arguments are off by
   *       {@code u R}, exp adds 2u; a weight then passes through at most L rescale factors (one
   *       per running-max increase, per split merge), whose arguments telescope to at most R and
   *       each of which adds an exp and a product (3u): {@code delta <= u (2R + 3L + 6)};
   *   <li>the value accumulation and the weight sum: L terms each, {@code 2 L u}; the division: u.
   * </ul>
   * So {@code |o - o_ref| <= SAFETY (2E + u (4R + 8L + 13)) A_j}, and for lse = m + ln S:
   * {@code SAFETY (E + u (2R + 4L + 6 + 2 |ln S| + 3 |lse|))}. With no keys (L = 0) the result must
   * be exactly the empty state.
   */
  public static Tolerance attentionDecode(AttentionShape shape, double scale, double[] q, double[] k, double[] v,
      ReferenceOps.State ref, DType outDtype) {
    int batch = shape.batch();
    int hq = shape.numQHeads();
    int hkv = shape.numKvHeads();
    int d = shape.headDim();
    int len = Math.toIntExact(shape.kvLen());
    int group = hq / hkv;
    double[] tolO = new double[batch * hq * d];
    double[] tolLse = new double[batch * hq];
    if (len == 0) {
      return new Tolerance(tolO, tolLse);
    }
    double[] scores = new double[len];
    double[] weightedAbs = new double[d];
    for (int b = 0; b < batch; b++) {
      for (int h = 0; h < hq; h++) {
        int row = b * hq + h;
        int kvHead = h / group;
        double magnitude = 0;
        double max = Double.NEGATIVE_INFINITY;
        double min = Double.POSITIVE_INFINITY;
        for (int t = 0; t < len; t++) {
          int kBase = ((b * len + t) * hkv + kvHead) * d;
          double dot = 0;
          double abs = 0;
          for (int j = 0; j < d; j++) {
            double p = q[row * d + j] * k[kBase + j];
            dot += p;
            abs += Math.abs(p);
          }
          scores[t] = scale * dot;
          magnitude = Math.max(magnitude, Math.abs(scale) * abs);
          max = Math.max(max, scores[t]);
          min = Math.min(min, scores[t]);
        }
        double scoreError = (d + 3) * U * magnitude;
        double range = max - min;
        java.util.Arrays.fill(weightedAbs, 0);
        for (int t = 0; t < len; t++) {
          double p = Math.exp(scores[t] - ref.lse()[row]);
          int vBase = ((b * len + t) * hkv + kvHead) * d;
          for (int j = 0; j < d; j++) {
            weightedAbs[j] += p * Math.abs(v[vBase + j]);
          }
        }
        double relative = SAFETY * (2 * scoreError + U * (4 * range + 8.0 * len + 13));
        for (int j = 0; j < d; j++) {
          int e = row * d + j;
          tolO[e] = output(relative * weightedAbs[j], ref.o()[e], outDtype);
        }
        double lnS = ref.lse()[row] - max;
        tolLse[row] = SAFETY * (scoreError
            + U * (2 * range + 4.0 * len + 6 + 2 * Math.abs(lnS) + 3 * Math.abs(ref.lse()[row])));
      }
    }
    return new Tolerance(tolO, tolLse);
  }

  /**
   * Adds the final rounding of an output element: none for fp32 (already in the fp32 bound);
   * for bf16 the rounded value is within 2^-8 of the fp32 result, itself within {@code fp32} of
   * the reference.
   */
  static double output(double fp32, double reference, DType outDtype) {
    if (outDtype == DType.BF16) {
      return fp32 + Bf16.UNIT_ROUNDOFF * (Math.abs(reference) + fp32);
    }
    return fp32;
  }
}
