package io.kvasir.ops;

import io.kvasir.nativeapi.AttentionShape;

/**
 * Double-precision references of the attention-state operations, written from the header's
 * definitions and nothing else:
 * <pre>
 *   state over keys I:  lse = ln sum_{i in I} exp(s_i),  o = sum_i exp(s_i - lse) v_i,  s_i = scale * q.k_i
 *   lse = -inf is the empty state; its o is ignored (may be NaN).
 *   merge: lse = ln sum_i exp(lse_i), o = sum_i exp(lse_i - lse) o_i; only empty states give o = 0, lse = -inf.
 * </pre>
 * Inputs are the exact values the kernels see (bf16 inputs already rounded), so the only error
 * here is double rounding, about 2^-53 relative: negligible against the fp32 bounds of
 * {@link ErrorBounds}. Tensors are flat, row-major arrays with the native layouts.
 */
public final class ReferenceOps {
  private ReferenceOps() {}

  /** An attention state per row: {@code o [rows][headDim]}, {@code lse [rows]} (natural log). */
  public record State(double[] o, double[] lse) {}

  /**
   * N-way merge. {@code o [numStates][rows][headDim]}, {@code lse [numStates][rows]}.
   * A NaN lse makes its row NaN: a broken state must never pass for a valid one.
   */
  public static State mergeStates(int numStates, int rows, int headDim, double[] o, double[] lse) {
    checkLength("o", o, (long) numStates * rows * headDim);
    checkLength("lse", lse, (long) numStates * rows);
    double[] outO = new double[rows * headDim];
    double[] outLse = new double[rows];
    for (int r = 0; r < rows; r++) {
      double m = Double.NEGATIVE_INFINITY;
      boolean nan = false;
      for (int i = 0; i < numStates; i++) {
        double l = lse[i * rows + r];
        nan |= Double.isNaN(l);
        m = Math.max(m, l);
      }
      if (nan) {
        java.util.Arrays.fill(outO, r * headDim, (r + 1) * headDim, Double.NaN);
        outLse[r] = Double.NaN;
        continue;
      }
      if (m == Double.NEGATIVE_INFINITY) {
        outLse[r] = Double.NEGATIVE_INFINITY; // o stays 0
        continue;
      }
      double sum = 0;
      for (int i = 0; i < numStates; i++) {
        double l = lse[i * rows + r];
        if (l == Double.NEGATIVE_INFINITY) {
          continue; // empty: its o is never read
        }
        double w = Math.exp(l - m);
        sum += w;
        int base = (i * rows + r) * headDim;
        for (int j = 0; j < headDim; j++) {
          outO[r * headDim + j] += w * o[base + j];
        }
      }
      for (int j = 0; j < headDim; j++) {
        outO[r * headDim + j] /= sum;
      }
      outLse[r] = m + Math.log(sum);
    }
    return new State(outO, outLse);
  }

  /** Two-state merge, {@code o [rows][headDim]} and {@code lse [rows]} each. */
  public static State mergeState(int rows, int headDim, double[] oA, double[] lseA, double[] oB, double[] lseB) {
    return mergeStates(2, rows, headDim, concat(oA, oB), concat(lseA, lseB));
  }

  /**
   * Single-query attention, GQA-aware: query head h reads KV head {@code h / (Hq / Hkv)}.
   * {@code q [batch][Hq][d]}, {@code k, v [batch][kvLen][Hkv][d]}; returns {@code o [batch][Hq][d]},
   * {@code lse [batch][Hq]}. kvLen = 0 gives the empty state (o = 0, lse = -inf).
   */
  public static State attentionDecode(AttentionShape shape, double scale, double[] q, double[] k, double[] v) {
    int batch = shape.batch();
    int hq = shape.numQHeads();
    int hkv = shape.numKvHeads();
    int d = shape.headDim();
    int len = Math.toIntExact(shape.kvLen());
    if (hkv <= 0 || hq % hkv != 0) {
      throw new IllegalArgumentException("numQHeads=" + hq + " is not a multiple of numKvHeads=" + hkv);
    }
    checkLength("q", q, shape.queryElements());
    checkLength("k", k, shape.kvElements());
    checkLength("v", v, shape.kvElements());
    int group = hq / hkv;
    double[] o = new double[batch * hq * d];
    double[] lse = new double[batch * hq];
    double[] scores = new double[len];
    for (int b = 0; b < batch; b++) {
      for (int h = 0; h < hq; h++) {
        int row = b * hq + h;
        if (len == 0) {
          lse[row] = Double.NEGATIVE_INFINITY;
          continue;
        }
        int kvHead = h / group;
        double m = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < len; t++) {
          int kBase = ((b * len + t) * hkv + kvHead) * d;
          double dot = 0;
          for (int j = 0; j < d; j++) {
            dot += q[row * d + j] * k[kBase + j];
          }
          scores[t] = scale * dot;
          m = Math.max(m, scores[t]);
        }
        double sum = 0;
        for (int t = 0; t < len; t++) {
          double w = Math.exp(scores[t] - m);
          sum += w;
          int vBase = ((b * len + t) * hkv + kvHead) * d;
          for (int j = 0; j < d; j++) {
            o[row * d + j] += w * v[vBase + j];
          }
        }
        for (int j = 0; j < d; j++) {
          o[row * d + j] /= sum;
        }
        lse[row] = m + Math.log(sum);
      }
    }
    return new State(o, lse);
  }

  static double[] concat(double[] a, double[] b) {
    double[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  private static void checkLength(String name, double[] array, long expected) {
    if (array.length != expected) {
      throw new IllegalArgumentException(name + " has " + array.length + " elements, the shape needs " + expected);
    }
  }
}
