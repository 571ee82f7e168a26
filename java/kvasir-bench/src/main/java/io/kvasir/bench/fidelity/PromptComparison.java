package io.kvasir.bench.fidelity;

/**
 * One prompt under one policy against the baseline (full KV).
 *
 * @param id              the prompt's id (a task record's, or {@code prompt-<i>})
 * @param group           what the prompt is aggregated with ({@code <task>/<length>}, or the file)
 * @param promptTokens    chat-rendered prompt tokens
 * @param kl              per step {@code i}: {@code KL(p_full || p_policy)} in nats of the distribution
 *                        of continuation token {@code i} (teacher-forced: both saw the baseline's tokens)
 * @param top1Agreements  steps where both distributions have the same argmax
 * @param tokenAgreements positions where free-running greedy generation under the policy gave
 *                        the baseline's token
 * @param firstDivergence the first position (0-based) where the policy's greedy tokens differ
 *                        from the baseline's; {@code kl.length} when none does
 */
public record PromptComparison(String id, String group, int promptTokens, double[] kl, int top1Agreements,
    int tokenAgreements, int firstDivergence) {

  public int steps() {
    return kl.length;
  }

  public boolean diverged() {
    return firstDivergence < kl.length;
  }

  /**
   * Compares the baseline's and the policy's teacher-forced logits step by step, and the two
   * greedy continuations position by position.
   *
   * @param baseline       per step, the baseline's fp32 logits
   * @param policy         per step, the policy's fp32 logits (same steps, same vocabulary)
   * @param baselineTokens the baseline's greedy continuation (what was forced)
   * @param policyTokens   the policy's own greedy continuation (compared up to the baseline's length)
   */
  public static PromptComparison of(String id, String group, int promptTokens, float[][] baseline, float[][] policy,
      int[] baselineTokens, int[] policyTokens) {
    if (baseline.length != policy.length || baseline.length != baselineTokens.length) {
      throw new IllegalArgumentException(id + ": " + baseline.length + " baseline steps, " + policy.length
          + " policy steps, " + baselineTokens.length + " forced tokens");
    }
    int n = baseline.length;
    double[] kl = new double[n];
    int top1 = 0;
    for (int i = 0; i < n; ++i) {
      kl[i] = Divergence.kl(baseline[i], policy[i]);
      if (Divergence.argmax(baseline[i]) == Divergence.argmax(policy[i])) {
        ++top1;
      }
    }
    int agree = 0;
    int first = n;
    for (int i = 0; i < n; ++i) {
      boolean same = i < policyTokens.length && policyTokens[i] == baselineTokens[i];
      if (same) {
        ++agree;
      } else if (first == n) {
        first = i;
      }
    }
    return new PromptComparison(id, group, promptTokens, kl, top1, agree, first);
  }

  /** Mean KL over the steps. */
  public double meanKl() {
    double s = 0;
    for (double v : kl) {
      s += v;
    }
    return kl.length == 0 ? 0 : s / kl.length;
  }
}
