package io.kvasir.ops;

/**
 * bfloat16 as raw bits in a {@code short}: the top 16 bits of an IEEE binary32 (8 significant
 * bits, so rounding to it has unit roundoff 2^-8).
 */
public final class Bf16 {
  /** Unit roundoff of bf16: round-to-nearest moves a value by at most this fraction of itself. */
  public static final double UNIT_ROUNDOFF = 0x1p-8;

  /** A quiet NaN. */
  public static final short NAN = (short) 0x7FC0;

  private Bf16() {}

  /** The float with these bf16 bits (exact). */
  public static float toFloat(short bits) {
    return Float.intBitsToFloat((bits & 0xFFFF) << 16);
  }

  /**
   * Rounds to the nearest bf16, ties to even. NaN stays NaN (made quiet, sign kept); infinities
   * and overflow to infinity behave as IEEE rounding says.
   */
  public static short fromFloat(float value) {
    int bits = Float.floatToRawIntBits(value);
    if ((bits & 0x7FFFFFFF) > 0x7F800000) {
      return (short) ((bits >>> 16) | 0x0040);
    }
    // Adding 0x7FFF plus the lowest kept bit rounds half-way cases to the even neighbour.
    int rounding = 0x7FFF + ((bits >>> 16) & 1);
    return (short) ((bits + rounding) >>> 16);
  }

  /** {@code value} rounded to bf16 and back. */
  public static float round(float value) {
    return toFloat(fromFloat(value));
  }

  public static short[] fromFloats(float[] values) {
    short[] out = new short[values.length];
    for (int i = 0; i < values.length; i++) {
      out[i] = fromFloat(values[i]);
    }
    return out;
  }

  public static float[] toFloats(short[] bits) {
    float[] out = new float[bits.length];
    for (int i = 0; i < bits.length; i++) {
      out[i] = toFloat(bits[i]);
    }
    return out;
  }
}
