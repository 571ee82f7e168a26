package io.kvasir.bench.tasks;

import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/** The small word lists keys are drawn from ("adjective-noun"), embedded so records need no data files. */
final class Words {
  static final List<String> ADJECTIVES = List.of(
      "amber", "brisk", "calm", "dusty", "eager", "faint", "gentle", "hollow", "icy", "jolly",
      "keen", "lively", "mellow", "narrow", "odd", "pale", "quiet", "rapid", "silent", "tidy",
      "upper", "vivid", "warm", "young", "zesty", "bold", "crisp", "dark", "early", "fancy",
      "golden", "humble", "inner", "jagged", "kind", "little", "misty", "noble", "olive", "proud",
      "rough", "sandy", "tall", "urban", "violet", "wild", "yellow", "ancient", "bright", "clever",
      "deep", "empty", "fresh", "green", "heavy", "lucky", "modern", "plain", "royal", "sharp");

  static final List<String> NOUNS = List.of(
      "lake", "falcon", "garden", "harbor", "island", "jungle", "kettle", "lantern", "meadow", "needle",
      "orchard", "pebble", "quarry", "river", "saddle", "tower", "valley", "willow", "anchor", "basket",
      "canyon", "desert", "engine", "forest", "glacier", "hammer", "igloo", "jacket", "kitten", "ladder",
      "mirror", "nest", "ocean", "pillow", "rocket", "shadow", "tunnel", "umbrella", "violin", "wagon",
      "bridge", "candle", "dragon", "feather", "guitar", "helmet", "insect", "marble", "planet", "rabbit",
      "spider", "ticket", "window", "badger", "castle", "dolphin", "fountain", "lemon", "parrot", "summit");

  private Words() {}

  /** An "adjective-noun" key not yet in {@code used}, which it joins. */
  static String freshKey(SplittableRandom rng, Set<String> used) {
    while (true) {
      String key = ADJECTIVES.get(rng.nextInt(ADJECTIVES.size())) + "-" + NOUNS.get(rng.nextInt(NOUNS.size()));
      if (used.add(key)) {
        return key;
      }
    }
  }

  /** A word of {@code letters} random upper-case letters not yet in {@code used}, which it joins. */
  static String freshName(SplittableRandom rng, int letters, Set<String> used) {
    while (true) {
      char[] c = new char[letters];
      for (int i = 0; i < letters; ++i) c[i] = (char) ('A' + rng.nextInt(26));
      String name = new String(c);
      if (used.add(name)) {
        return name;
      }
    }
  }

  /** A decimal number of exactly {@code digits} digits, the first non-zero. */
  static String number(SplittableRandom rng, int digits) {
    long low = 1;
    for (int i = 1; i < digits; ++i) low *= 10;
    return Long.toString(low + rng.nextLong(9 * low));
  }

  /** {@code digits} lower-case hexadecimal characters. */
  static String hex(SplittableRandom rng, int digits) {
    char[] c = new char[digits];
    for (int i = 0; i < digits; ++i) c[i] = Character.forDigit(rng.nextInt(16), 16);
    return new String(c);
  }
}
