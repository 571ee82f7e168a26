package io.kvasir.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class Bf16Test {
  private static short bits(int b) {
    return (short) b;
  }

  @Test
  void exactValuesConvertExactly() {
    assertEquals(bits(0x3F80), Bf16.fromFloat(1f));
    assertEquals(bits(0xBF80), Bf16.fromFloat(-1f));
    assertEquals(bits(0x0000), Bf16.fromFloat(0f));
    assertEquals(bits(0x8000), Bf16.fromFloat(-0f));
    assertEquals(bits(0x7F80), Bf16.fromFloat(Float.POSITIVE_INFINITY));
    assertEquals(bits(0xFF80), Bf16.fromFloat(Float.NEGATIVE_INFINITY));
    assertEquals(1f, Bf16.toFloat(bits(0x3F80)));
    assertEquals(-2f, Bf16.toFloat(bits(0xC000)));
  }

  @Test
  void roundsToNearestTiesToEven() {
    float ulp = 0x1p-7f; // bf16 spacing in [1, 2)
    assertEquals(1f, Bf16.round(1f + ulp / 2), "tie between 1 (even) and 1 + ulp: stays even");
    assertEquals(1f + 2 * ulp, Bf16.round(1f + 1.5f * ulp), "tie between 1 + ulp (odd) and 1 + 2ulp: goes even");
    assertEquals(1f + ulp, Bf16.round(1f + ulp / 2 + 0x1p-20f), "just above the tie rounds up");
    assertEquals(1f, Bf16.round(1f + ulp / 2 - 0x1p-20f), "just below the tie rounds down");
    assertEquals(-1f - 2 * ulp, Bf16.round(-1f - 1.5f * ulp), "symmetric for negatives");
    assertEquals(Float.POSITIVE_INFINITY, Bf16.round(Float.MAX_VALUE), "rounds past the largest bf16");
  }

  @Test
  void nanStaysNan() {
    assertTrue(Float.isNaN(Bf16.round(Float.NaN)));
    assertTrue(Float.isNaN(Bf16.toFloat(Bf16.NAN)));
    // A signalling-style NaN whose payload sits only in the dropped bits must not become infinity.
    float low = Float.intBitsToFloat(0x7F800001);
    assertTrue(Float.isNaN(Bf16.round(low)));
    assertEquals(bits(0xFFC0), Bf16.fromFloat(Float.intBitsToFloat(0xFF800001)), "sign kept, made quiet");
  }

  @Test
  void everyBf16ValueRoundTrips() {
    for (int b = 0; b < 0x10000; b++) {
      float f = Bf16.toFloat((short) b);
      if (!Float.isNaN(f)) {
        assertEquals((short) b, Bf16.fromFloat(f), "bits " + Integer.toHexString(b));
      }
    }
  }

  @Test
  void roundingErrorIsWithinTheUnitRoundoff() {
    java.util.SplittableRandom rng = new java.util.SplittableRandom(7);
    for (int i = 0; i < 100_000; i++) {
      float x = (float) ((rng.nextDouble() - 0.5) * Math.pow(2, rng.nextInt(-60, 60)));
      double err = Math.abs((double) Bf16.round(x) - x);
      assertTrue(err <= Bf16.UNIT_ROUNDOFF * Math.abs(x), x + " -> " + Bf16.round(x));
    }
  }
}
