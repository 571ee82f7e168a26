package io.kvasir.ops;

import io.kvasir.nativeapi.Stream;
import java.util.Map;

/**
 * One self-check: fixed inputs (made once from a seed, so every device sees the same), what the
 * reference says and how far each output element may be from it, and a way to run it on a stream.
 */
interface CheckCase {
  /** Reference values and tolerances of one output tensor. */
  record Expected(double[] values, double[] tolerance, int rowLength) {}

  String name();

  long seed();

  /** Output tensors by name; the same keys as {@link #run}. */
  Map<String, Expected> expected();

  /** Runs the op on the stream's device with poisoned outputs and returns every output tensor. */
  Map<String, double[]> run(Stream stream);
}
