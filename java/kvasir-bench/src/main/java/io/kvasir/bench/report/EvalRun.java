package io.kvasir.bench.report;

import java.nio.file.Path;
import java.util.List;

/**
 * An accuracy grid ({@code kvasir-bench eval --out}): one cell per (task, length).
 *
 * @param policy the cache policy spec, when recorded ({@code none (slot caches)} for the slot path)
 * @param budget the KV budget in tokens when the record states one ({@code kv_budget_tokens}), else
 *               null; charts then order policies by their spec
 */
public record EvalRun(Path file, RunInfo info, String model, String policy, Double budget, List<Cell> cells)
    implements Run {

  @Override
  public String kind() {
    return "eval";
  }

  String label() {
    return policy == null ? "(policy not recorded)" : policy;
  }

  /**
   * @param count    samples
   * @param correct  exact matches
   * @param accuracy correct / count
   */
  public record Cell(String task, int length, int count, Integer correct, double accuracy) {}
}
