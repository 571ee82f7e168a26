package io.kvasir.ops;

import io.kvasir.nativeapi.Stream;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One self-check: fixed inputs (made once from a seed, so every device sees the same), what the
 * reference says and how far each output element may be from it, and a way to run it on a stream.
 */
abstract class CheckCase {
  /** Reference values and tolerances of one output tensor. */
  record Expected(double[] values, double[] tolerance, int rowLength) {}

  private final long seed;
  // Filled by each subclass's constructor, in output order.
  final Map<String, Expected> expected = new LinkedHashMap<>();

  CheckCase(long seed) {
    this.seed = seed;
  }

  abstract String name();

  final long seed() {
    return seed;
  }

  /** Output tensors by name; the same keys as {@link #run}. */
  final Map<String, Expected> expected() {
    return expected;
  }

  /** Runs the op on the stream's device with poisoned outputs and returns every output tensor. */
  abstract Map<String, double[]> run(Stream stream);
}
