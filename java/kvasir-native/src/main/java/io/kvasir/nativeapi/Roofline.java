package io.kvasir.nativeapi;

import java.util.Objects;

/**
 * Ceilings measured on one device ({@code kv_roofline}): the denominators that benchmarks report
 * against. Bandwidths are bytes per second, a copy counting bytes read plus bytes written; 0 means
 * not measured on this backend (host transfers on the CPU; GEMM until cuBLAS).
 *
 * @param bufferBytes working set of each bandwidth test
 * @param repetitions timed repetitions per figure (the median is taken)
 */
public record Roofline(Backend backend, int device, double readBytesPerS, double copyBytesPerS, double h2dBytesPerS,
    double d2hBytesPerS, double gemmBf16FlopsPerS, long bufferBytes, int repetitions) {

  /**
   * Measures the stream's device.
   *
   * @param bufferBytes working set per test: 0 lets the library pick (several times the
   *     last-level cache), otherwise at least 1 MiB
   * @param repetitions timed runs per figure, 0 for the library's default (20)
   */
  public static Roofline probe(Stream stream, long bufferBytes, int repetitions) {
    Objects.requireNonNull(stream, "stream");
    try (KvasirLibrary.kv_roofline r = new KvasirLibrary.kv_roofline()) {
      KvasirException.check(KvasirLibrary.kv_roofline_probe(stream.nativeHandle(), bufferBytes, repetitions, r));
      return new Roofline(stream.backend(), stream.device(), r.read_bytes_per_s(), r.copy_bytes_per_s(),
          r.h2d_bytes_per_s(), r.d2h_bytes_per_s(), r.gemm_bf16_flops_per_s(), r.buffer_bytes(), r.repetitions());
    }
  }
}
