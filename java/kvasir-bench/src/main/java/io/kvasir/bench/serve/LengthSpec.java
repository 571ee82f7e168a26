package io.kvasir.bench.serve;

import java.util.SplittableRandom;

/**
 * A token length: fixed ({@code 1024}) or uniform in an inclusive range ({@code 1024:8192}).
 *
 * @param min the shortest length (>= 1)
 * @param max the longest length (>= min)
 */
public record LengthSpec(int min, int max) {
  public LengthSpec {
    if (min < 1 || max < min) {
      throw new IllegalArgumentException("length range [" + min + ", " + max + "] must satisfy 1 <= min <= max");
    }
  }

  public static LengthSpec fixed(int n) {
    return new LengthSpec(n, n);
  }

  /**
   * Parses {@code N} or {@code A:B}.
   *
   * @throws IllegalArgumentException naming the text when it is neither, or out of range
   */
  public static LengthSpec parse(String text) {
    String t = text.strip();
    try {
      int colon = t.indexOf(':');
      if (colon < 0) {
        return fixed(Integer.parseInt(t));
      }
      return new LengthSpec(Integer.parseInt(t.substring(0, colon).strip()),
          Integer.parseInt(t.substring(colon + 1).strip()));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("length \"" + text + "\": write N (fixed) or A:B (uniform in [A, B])");
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("length \"" + text + "\": " + e.getMessage());
    }
  }

  public boolean isFixed() {
    return min == max;
  }

  /** One length: {@code min + rng.nextInt(max - min + 1)} (one draw even when fixed, as serve's rule does). */
  public int draw(SplittableRandom rng) {
    return min + rng.nextInt(max - min + 1);
  }

  @Override
  public String toString() {
    return isFixed() ? Integer.toString(min) : min + ":" + max;
  }
}
