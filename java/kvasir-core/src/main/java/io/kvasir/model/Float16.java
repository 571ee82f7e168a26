package io.kvasir.model;

/**
 * IEEE binary16 as raw bits in a {@code short} (Java 17 has no {@code Float.floatToFloat16}):
 * 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits; subnormals below 2^-14.
 */
public final class Float16 {
  private Float16() {}

  /** The float with these binary16 bits (exact: every binary16 value is a float). */
  public static float toFloat(short bits) {
    int h = bits & 0xFFFF;
    int sign = (h & 0x8000) << 16;
    int exponent = (h >>> 10) & 0x1F;
    int fraction = h & 0x3FF;
    if (exponent == 0x1F) {
      return Float.intBitsToFloat(sign | 0x7F800000 | (fraction << 13)); // infinity or NaN, payload kept
    }
    if (exponent == 0) {
      float magnitude = fraction * 0x1p-24f; // subnormal (or zero): fraction units of 2^-24, exact
      return sign == 0 ? magnitude : -magnitude;
    }
    // Rebias the exponent from 15 to 127.
    return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (fraction << 13));
  }

  /**
   * Rounds to the nearest binary16, ties to even, as IEEE conversion does: magnitudes from 65520
   * up become infinity, those up to 2^-25 become zero, NaN stays NaN (made quiet, sign kept).
   */
  public static short fromFloat(float value) {
    int bits = Float.floatToRawIntBits(value);
    int sign = (bits >>> 16) & 0x8000;
    int abs = bits & 0x7FFFFFFF;
    if (abs > 0x7F800000) {
      return (short) (sign | 0x7E00 | ((abs >>> 13) & 0x3FF));
    }
    if (abs >= 0x477FF000) {
      // 65520 lies half-way between the largest binary16 (65504, odd fraction) and 65536: it and
      // everything above round to infinity.
      return (short) (sign | 0x7C00);
    }
    if (abs >= 0x38800000) {
      // Normal: rebias 127 -> 15 by subtracting 112 << 23, then drop 13 fraction bits rounding to
      // nearest even; a carry out of the fraction correctly bumps the exponent.
      int rebased = abs - 0x38000000;
      int rounding = 0x0FFF + ((rebased >>> 13) & 1);
      return (short) (sign | ((rebased + rounding) >>> 13));
    }
    if (abs <= 0x33000000) {
      return (short) sign; // at most 2^-25: half of the smallest subnormal, ties to even zero
    }
    // Subnormal result: value = m * 2^(e-150) in units of 2^-24 is m >> (126 - e), rounded.
    int exponent = abs >>> 23;
    int mantissa = (abs & 0x7FFFFF) | 0x800000;
    int shift = 126 - exponent; // 14..24
    int q = mantissa >>> shift;
    int rest = mantissa & ((1 << shift) - 1);
    int half = 1 << (shift - 1);
    if (rest > half || (rest == half && (q & 1) == 1)) {
      q++; // may carry into the smallest normal (0x400), which is the right encoding
    }
    return (short) (sign | q);
  }
}
