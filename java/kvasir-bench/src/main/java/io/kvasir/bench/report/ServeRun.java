package io.kvasir.bench.report;

import java.nio.file.Path;
import java.util.List;

/**
 * One serving run ({@code kvasir-perf/1}, topic {@code serve}): its policy, workload, figures in
 * table order, per-request samples for latency CDFs and, for a pp/tg workload, its speed matrix.
 *
 * @param policy         the policy spec as given ({@code configuration.policy})
 * @param policyResolved the spec the engine resolved it to, when recorded
 * @param prefixCache    whether prefix caching was on, when recorded
 * @param ttftMs         per-request TTFT ({@code samples.ttft_ms}); empty when not sampled
 * @param tpotMs         per-request TPOT: {@code samples.tpot_ms}, or (latency - TTFT) / (output tokens - 1)
 *                       for requests of more than one token; empty when not sampled
 */
public record ServeRun(Path file, RunInfo info, String model, String policy, String policyResolved,
    Boolean prefixCache, ServeWorkload workload, List<Figure> figures, List<Double> ttftMs, List<Double> tpotMs,
    List<ServeRun.MatrixRow> matrix) implements Run {

  @Override
  public String kind() {
    return "serve";
  }

  /** The column label: the policy, marked when prefix caching was off. */
  String label() {
    String p = policy == null ? "(no policy)" : policy;
    return Boolean.FALSE.equals(prefixCache) ? p + " (no prefix cache)" : p;
  }

  /** The figure of that name, or null. */
  Figure figure(String name) {
    for (Figure f : figures) {
      if (f.name().equals(name)) {
        return f;
      }
    }
    return null;
  }

  /**
   * One row of a pp/tg matrix (llama-bench style).
   *
   * @param phase       {@code pp} (prompt processing) or {@code tg} (token generation)
   * @param context     tokens in the context
   * @param batch       sequences in the batch
   * @param tokensPerS  tokens processed (pp) or generated (tg) per second
   */
  public record MatrixRow(String phase, int context, int batch, double tokensPerS) {}
}
