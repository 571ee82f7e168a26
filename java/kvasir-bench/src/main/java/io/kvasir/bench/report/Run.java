package io.kvasir.bench.report;

import java.nio.file.Path;

/** One run read from a record file: a serving run, a peer's run, an accuracy grid, kernel figures, or fidelity. */
public sealed interface Run permits ServeRun, PeerRun, EvalRun, KernelRun, FidelityRun {
  /** The file it was read from. */
  Path file();

  /** Where and how it ran, as far as the record says. */
  RunInfo info();

  /** {@code serve}, {@code peer}, {@code eval}, {@code kernels} or {@code fidelity}. */
  String kind();

  /** The file name without its directory, for captions. */
  default String fileName() {
    return file().getFileName().toString();
  }
}
