package io.kvasir.ops;

import io.kvasir.nativeapi.DType;
import java.util.SplittableRandom;

/** Random test tensors whose values are exactly representable in the dtype the kernel reads. */
final class RandomInputs {
  private RandomInputs() {}

  /** Uniform in [lo, hi), rounded to {@code dtype}. */
  static double[] uniform(SplittableRandom rng, int n, double lo, double hi, DType dtype) {
    double[] out = new double[n];
    for (int i = 0; i < n; i++) {
      out[i] = exact(lo + (hi - lo) * rng.nextDouble(), dtype);
    }
    return out;
  }

  /** The value the kernel sees for {@code x} stored as {@code dtype}. */
  static double exact(double x, DType dtype) {
    float f = (float) x;
    return dtype == DType.BF16 ? Bf16.round(f) : f;
  }

  /** {@code count} distinct indices in [0, bound), in random order. */
  static long[] distinct(SplittableRandom rng, int count, int bound) {
    if (count > bound) {
      throw new IllegalArgumentException(count + " distinct values do not fit in [0, " + bound + ")");
    }
    int[] all = new int[bound];
    for (int i = 0; i < bound; i++) {
      all[i] = i;
    }
    long[] out = new long[count];
    for (int i = 0; i < count; i++) {
      int j = i + rng.nextInt(bound - i); // partial Fisher-Yates
      int t = all[i];
      all[i] = all[j];
      all[j] = t;
      out[i] = all[i];
    }
    return out;
  }

  /** SplitMix64's finalizer: well-spread per-check seeds from one run seed. */
  static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
