package io.kvasir.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.model.reference.ReferenceModel;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class Float16Test {
  /**
   * Nearest binary16 computed a different way, in double: scale to units of the value's ulp and
   * round with {@link Math#rint} (ties to even). Returns the value, not the bits.
   */
  private static double nearestHalf(double x) {
    double a = Math.abs(x);
    if (a >= 65520) {
      return Math.copySign(Double.POSITIVE_INFINITY, x);
    }
    int exponent = Math.max(Math.getExponent(a), -14); // subnormals share the ulp of 2^-14
    double ulp = Math.scalb(1.0, exponent - 10);
    return Math.copySign(Math.rint(a / ulp) * ulp, x);
  }

  @Test
  void everyHalfValueRoundTripsExactly() {
    for (int b = 0; b < 0x10000; b++) {
      short bits = (short) b;
      float f = Float16.toFloat(bits);
      double independent = ReferenceModel.halfToDouble(bits);
      if (Double.isNaN(independent)) {
        assertTrue(Float.isNaN(f), Integer.toHexString(b));
        assertTrue(Float.isNaN(Float16.toFloat(Float16.fromFloat(f))));
        continue;
      }
      assertEquals(independent, f, 0.0, "decode of 0x" + Integer.toHexString(b));
      assertEquals(bits, Float16.fromFloat(f), "encode of " + f);
    }
  }

  @Test
  void roundsToNearestEvenLikeDoubleArithmetic() {
    SplittableRandom rng = new SplittableRandom(11);
    for (int i = 0; i < 400_000; i++) {
      // Magnitudes from deep underflow to overflow, both signs.
      float x = (float) ((rng.nextDouble() * 2 - 1) * Math.scalb(1.0, rng.nextInt(-28, 18)));
      assertEquals(nearestHalf(x), Float16.toFloat(Float16.fromFloat(x)), 0.0, "value " + x);
    }
  }

  @Test
  void tiesAndEdges() {
    float ulpAtOne = 0x1p-10f;
    assertEquals(1f, Float16.toFloat(Float16.fromFloat(1f + ulpAtOne / 2)), "tie to even (down)");
    assertEquals(1f + 2 * ulpAtOne, Float16.toFloat(Float16.fromFloat(1f + 1.5f * ulpAtOne)), "tie to even (up)");
    assertEquals(65504f, Float16.toFloat(Float16.fromFloat(65519.99f)), "just below the overflow tie");
    assertEquals(Float.POSITIVE_INFINITY, Float16.toFloat(Float16.fromFloat(65520f)), "overflow tie goes to inf");
    assertEquals(Float.NEGATIVE_INFINITY, Float16.toFloat(Float16.fromFloat(-1e6f)));
    assertEquals(0x1p-24f, Float16.toFloat(Float16.fromFloat(0x1.0001p-25f)), "just above half the min subnormal");
    assertEquals(0f, Float16.toFloat(Float16.fromFloat(0x1p-25f)), "half the min subnormal ties to zero");
    assertEquals((short) 0x8000, Float16.fromFloat(-0x1p-30f), "underflow keeps the sign");
    assertEquals((short) 0x0400, Float16.fromFloat(0x1.ffcp-15f), "largest subnormal + rounding carries to 2^-14");
    assertEquals(0x7E00, Float16.fromFloat(Float.NaN) & 0x7E00, "NaN stays a quiet NaN");
  }
}
