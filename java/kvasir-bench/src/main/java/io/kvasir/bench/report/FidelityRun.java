package io.kvasir.bench.report;

import java.nio.file.Path;
import java.util.List;

/**
 * A {@code kvasir-bench fidelity} record: each policy against the baseline (full KV) on the same
 * prompts, one row per (policy, prompt group) plus the policy's {@code all} row.
 *
 * @param model    the model the prompts ran on
 * @param baseline the policy every other one is compared with
 * @param tokens   teacher-forced tokens per prompt
 */
public record FidelityRun(Path file, RunInfo info, String model, String baseline, int tokens, List<Row> rows)
    implements Run {

  /**
   * One (policy, group) row. KL is KL(p_baseline || p_policy) in nats per step; agreement figures are
   * fractions; first divergence is the position of the first differing free-running token.
   */
  public record Row(String policy, String group, int prompts, long steps, double klMean, double klP50, double klP90,
      double klMax, double top1Agreement, double tokenAgreement, double firstDivergenceMedian,
      double firstDivergenceMin) {}

  @Override
  public String kind() {
    return "fidelity";
  }
}
