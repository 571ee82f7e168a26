package io.kvasir.bench.fidelity;

/**
 * Distances between next-token distributions given as fp32 logits, computed in double.
 *
 * <p>The log-softmax is the stable one: {@code (z_i - max(z)) - log(sum_j exp(z_j - max(z)))}, each
 * {@code z_i} widened to double before any arithmetic. {@code KL(p || q) = sum_i p_i (log p_i - log q_i)}
 * in nats. Two identical logit arrays give identical log-probabilities, so every term is
 * {@code p_i * 0} and the KL is exactly 0. KL is not clamped: a value below 0 can only come from
 * double rounding (about 1e-16), and is reported as it is.
 *
 * <p>Bound under a logit perturbation: if {@code log q = log p + delta - log E_p[exp(delta)]}, i.e. the
 * q logits are the p logits plus {@code delta}, then {@code KL(p || q) = log E_p[exp(delta)] - E_p[delta]}
 * {@code <= (max(delta) - min(delta))^2 / 8} by Hoeffding's lemma. {@link #klBound} states it; a
 * policy that computes the same values up to fp32 rounding {@code |delta_i| <= eps} has KL at most
 * {@code eps^2 / 2}.
 */
public final class Divergence {
  private Divergence() {}

  /** {@code log softmax(logits)} in double (stable: the max is subtracted first). */
  public static double[] logSoftmax(float[] logits) {
    if (logits.length == 0) {
      throw new IllegalArgumentException("no logits");
    }
    double max = Double.NEGATIVE_INFINITY;
    for (float x : logits) {
      max = Math.max(max, x);
    }
    double sum = 0;
    for (float x : logits) {
      sum += Math.exp((double) x - max);
    }
    double logSum = Math.log(sum);
    double[] out = new double[logits.length];
    for (int i = 0; i < logits.length; ++i) {
      // (z_i - max) is exact for fp32 inputs widened to double; subtracting max + log(sum) at once
      // would lose the low bits of log(sum) against a large max.
      out[i] = ((double) logits[i] - max) - logSum;
    }
    return out;
  }

  /** {@code KL(p || q)} in nats from the log-probabilities of p and q (same length). */
  public static double kl(double[] logP, double[] logQ) {
    if (logP.length != logQ.length) {
      throw new IllegalArgumentException(logP.length + " against " + logQ.length + " log-probabilities");
    }
    double sum = 0;
    for (int i = 0; i < logP.length; ++i) {
      double p = Math.exp(logP[i]);
      if (p > 0) {  // 0 * log 0 = 0; a q of 0 where p > 0 gives +infinity, as it should
        sum += p * (logP[i] - logQ[i]);
      }
    }
    return sum;
  }

  /** {@code KL(softmax(p) || softmax(q))} in nats from fp32 logits. */
  public static double kl(float[] pLogits, float[] qLogits) {
    return kl(logSoftmax(pLogits), logSoftmax(qLogits));
  }

  /** The index of the largest logit, the lowest on ties (the engine's greedy rule). */
  public static int argmax(float[] logits) {
    int best = 0;
    for (int i = 1; i < logits.length; ++i) {
      if (logits[i] > logits[best]) {
        best = i;
      }
    }
    return best;
  }

  /**
   * Hoeffding's bound on {@code KL(softmax(p) || softmax(q))}: {@code (max(q - p) - min(q - p))^2 / 8}, the
   * differences taken in double.
   */
  public static double klBound(float[] pLogits, float[] qLogits) {
    double lo = Double.POSITIVE_INFINITY;
    double hi = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < pLogits.length; ++i) {
      double d = (double) qLogits[i] - pLogits[i];
      lo = Math.min(lo, d);
      hi = Math.max(hi, d);
    }
    return (hi - lo) * (hi - lo) / 8;
  }
}
