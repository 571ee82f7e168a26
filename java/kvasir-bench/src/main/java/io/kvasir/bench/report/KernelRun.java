package io.kvasir.bench.report;

import java.nio.file.Path;
import java.util.List;

/**
 * The figures of one kernel benchmark file: JSON lines of {@code tests-native/bench_paged_*} or a
 * torch peer script (one object per line), or the {@code figures} of a {@code kvasir-perf/1}
 * record ({@code bench_ops}, {@code kvasir generate --record}).
 */
public record KernelRun(Path file, RunInfo info, String topic, List<Row> rows) implements Run {

  @Override
  public String kind() {
    return "kernels";
  }

  /**
   * One figure against the roofline it names.
   *
   * @param op            the op ({@code paged_decode})
   * @param variant       the kernel variant where the bench names one ({@code tensor-core}), else null
   * @param shape         the shape, as {@code name=value} pairs
   * @param context       KV tokens attended ({@code ctx}, {@code kv_len}), for speed-vs-context charts; null if none
   * @param batch         sequences, when given
   * @param medianMs      median time of one run
   * @param achieved      the achieved rate, in {@code achievedUnit}; null when the record gives none
   * @param achievedUnit  {@code GB/s}, {@code TFLOP/s} or {@code tokens/s}
   * @param roofline      the ceiling's name as the record gives it ({@code read}, {@code copy}, {@code h2d},
   *                      {@code bf16 compute}); null when the record names none
   * @param ceiling       the ceiling in {@code achievedUnit}, when the record (or its header) gives it
   * @param fraction      {@code fraction_of_roofline} as recorded (never recomputed); null when absent
   * @param goalMet       the bench's own verdict on its goal, when it has one
   */
  public record Row(String op, String variant, String shape, Integer context, Integer batch, double medianMs,
      Double achieved, String achievedUnit, String roofline, Double ceiling, Double fraction, Boolean goalMet) {}
}
