package io.kvasir.bench.fidelity;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.bench.serve.LatencyStats;
import java.util.List;

/**
 * One policy on one group of prompts: KL pooled over every (prompt, step), top-1 agreement pooled
 * over the steps, token agreement over every generated position, first-divergence positions over
 * the prompts (a prompt that never diverged counts as the number of tokens), and the per-step
 * mean KL curve. Percentiles interpolate between closest ranks ({@link LatencyStats#percentile}).
 *
 * @param klCurve         the mean KL over prompts at each step, averaged into buckets of
 *                        {@code stepsPerPoint} steps so that it has at most {@link #CURVE_POINTS} points
 */
public record FidelitySummary(String policy, String group, int prompts, int steps, double klMean, double klP50,
    double klP90, double klMax, double top1Agreement, double tokenAgreement, double firstDivergenceMedian,
    int firstDivergenceMin, int divergedPrompts, int stepsPerPoint, double[] klCurve) {

  /** Most points of the per-step curve. */
  public static final int CURVE_POINTS = 256;

  public static FidelitySummary of(String policy, String group, List<PromptComparison> rows) {
    if (rows.isEmpty()) {
      throw new IllegalArgumentException("no prompts for " + policy + " on " + group);
    }
    int total = 0;
    int longest = 0;
    for (PromptComparison r : rows) {
      total += r.steps();
      longest = Math.max(longest, r.steps());
    }
    double[] all = new double[total];
    double[] firsts = new double[rows.size()];
    double[] curveSum = new double[longest];
    int[] curveCount = new int[longest];
    long top1 = 0;
    long agree = 0;
    int at = 0;
    int minFirst = Integer.MAX_VALUE;
    int diverged = 0;
    for (int k = 0; k < rows.size(); ++k) {
      PromptComparison r = rows.get(k);
      for (int i = 0; i < r.steps(); ++i) {
        all[at++] = r.kl()[i];
        curveSum[i] += r.kl()[i];
        ++curveCount[i];
      }
      top1 += r.top1Agreements();
      agree += r.tokenAgreements();
      firsts[k] = r.firstDivergence();
      minFirst = Math.min(minFirst, r.firstDivergence());
      if (r.diverged()) {
        ++diverged;
      }
    }
    LatencyStats kl = LatencyStats.of(all);
    LatencyStats first = LatencyStats.of(firsts);
    int stride = Math.max(1, (longest + CURVE_POINTS - 1) / CURVE_POINTS);
    double[] curve = new double[(longest + stride - 1) / stride];
    for (int p = 0; p < curve.length; ++p) {
      double sum = 0;
      int n = 0;
      for (int i = p * stride; i < Math.min(longest, (p + 1) * stride); ++i) {
        sum += curveSum[i] / curveCount[i];
        ++n;
      }
      curve[p] = sum / n;
    }
    return new FidelitySummary(policy, group, rows.size(), total, kl.mean(), kl.p50(), kl.p90(), kl.max(),
        total == 0 ? Double.NaN : top1 / (double) total, total == 0 ? Double.NaN : agree / (double) total,
        first.p50(), minFirst, diverged, stride, curve);
  }

  /** The summary's fields into {@code out} (the record's results schema, docs/fidelity.md). */
  public void putJson(ObjectNode out) {
    out.put("policy", policy);
    out.put("group", group);
    out.put("prompts", prompts);
    out.put("steps", steps);
    ObjectNode kl = out.putObject("kl_nats");
    kl.put("mean", klMean);
    kl.put("p50", klP50);
    kl.put("p90", klP90);
    kl.put("max", klMax);
    out.put("top1_agreement", top1Agreement);
    out.put("token_agreement", tokenAgreement);
    ObjectNode first = out.putObject("first_divergence");
    first.put("median", firstDivergenceMedian);
    first.put("min", firstDivergenceMin);
    first.put("diverged_prompts", divergedPrompts);
    ObjectNode curve = out.putObject("kl_curve");
    curve.put("steps_per_point", stepsPerPoint);
    ArrayNode mean = curve.putArray("mean_kl");
    for (double v : klCurve) {
      mean.add(v);
    }
  }
}
