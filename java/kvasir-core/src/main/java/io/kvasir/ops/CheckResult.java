package io.kvasir.ops;

import io.kvasir.nativeapi.Backend;

/**
 * One self-check on one device.
 *
 * @param name the op and its parameters, e.g. {@code attention_decode[bf16,d=128,hq=8,hkv=2,L=1000]};
 *     comparisons of CUDA against the CPU end in {@code " vs cpu"}
 * @param maxError the error at the worst element (largest error / tolerance)
 * @param tolerance the derived tolerance at that element (see {@link ErrorBounds})
 * @param seed the seed of this check's inputs: rerun it with {@code SelfCheck.builder().seed(...)}
 *     and the run seed, or reproduce the inputs from this one
 * @param detail the worst element and its values, or why the check could not run
 */
public record CheckResult(String name, Backend backend, int device, boolean passed, double maxError,
    double tolerance, long seed, String detail) {

  static CheckResult of(String name, Backend backend, int device, long seed, Agreement agreement) {
    return new CheckResult(name, backend, device, agreement.passed(), agreement.error(), agreement.tolerance(), seed,
        agreement.detail());
  }

  static CheckResult failed(String name, Backend backend, int device, long seed, String why) {
    return new CheckResult(name, backend, device, false, Double.NaN, Double.NaN, seed, why);
  }
}
