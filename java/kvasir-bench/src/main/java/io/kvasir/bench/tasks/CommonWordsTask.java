package io.kvasir.bench.tasks;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.regex.Pattern;

/**
 * {@code cwe} (RULER's common-word extraction): a numbered list of words in which
 * {@link #COMMON_WORDS} words occur {@link #commonRepeats} times each and the others
 * {@link #rareRepeats} times each, shuffled; the answer is the common words. As many rare words
 * as fit the budget. Words are made-up lower-case words of three consonant-vowel syllables
 * ({@link #WORD}), drawn distinct per record, so no list is needed and none is an English word
 * of the instruction or the answer sentence.
 */
final class CommonWordsTask {
  static final String PREFIX = "Below is a numbered list of words. In these words, some appear more often than others."
      + " Memorize the ones that appear most often.\n";
  /** Words the answer names (RULER's num_cw). */
  static final int COMMON_WORDS = 10;
  /** Below this budget the counts are RULER's short-context ones. */
  static final int SHORT_LENGTH = 4096;
  static final String CONSONANTS = "bdfgklmnprstvz";
  static final String VOWELS = "aeiou";
  /** What a list word looks like (the scorer reads these out of an output). */
  static final Pattern WORD = Pattern.compile("(?:[" + CONSONANTS + "][" + VOWELS + "]){3}");
  private static final int SAMPLE_ENTRIES = 64;

  private CommonWordsTask() {}

  /** Occurrences of each common word: RULER's freq_cw (30), or 6 below {@link #SHORT_LENGTH}. */
  static int commonRepeats(int length) {
    return length < SHORT_LENGTH ? 6 : 30;
  }

  /** Occurrences of each rare word: RULER's freq_ucw (3), or 1 below {@link #SHORT_LENGTH}. */
  static int rareRepeats(int length) {
    return length < SHORT_LENGTH ? 1 : 3;
  }

  static String suffix() {
    return "\nQuestion: What are the " + COMMON_WORDS + " most common words in the above list?";
  }

  /** Distinct words drawn on demand from their own stream: the n-th never depends on how many were drawn. */
  private static final class Pool {
    final SplittableRandom rng;
    final Set<String> used = new HashSet<>();
    final List<String> words = new ArrayList<>();

    Pool(SplittableRandom rng) {
      this.rng = rng;
    }

    String get(int i) {
      while (words.size() <= i) {
        while (true) {
          StringBuilder w = new StringBuilder(6);
          for (int s = 0; s < 3; ++s) {
            w.append(CONSONANTS.charAt(rng.nextInt(CONSONANTS.length()))).append(VOWELS.charAt(rng.nextInt(VOWELS.length())));
          }
          if (used.add(w.toString())) {
            words.add(w.toString());
            break;
          }
        }
      }
      return words.get(i);
    }
  }

  static TaskRecord generate(long seed, int length, TokenCounter counter) {
    SplittableRandom rng = Task.CWE.random(seed);
    long shuffleSeed = rng.nextLong();
    Pool pool = new Pool(rng.split());  // words 0..K-1 are the common ones
    int common = commonRepeats(length);
    int rare = rareRepeats(length);
    // Per entry "{i}. {word} ": numbered at about the list's size, which the first count then corrects.
    int at = Math.max(1, length / 8);
    StringBuilder sample = new StringBuilder();
    for (int i = 0; i < SAMPLE_ENTRIES; ++i) sample.append(at + i).append(". ").append(pool.get(i)).append(' ');
    double perEntry = counter.count(sample.toString()) / (double) SAMPLE_ENTRIES;
    double fixed = counter.count(PREFIX) + counter.count(suffix()) + COMMON_WORDS * common * perEntry;
    Fitter.Fit fit = Fitter.fit(Task.CWE, counter, length, n -> build(pool, n, common, rare, shuffleSeed).prompt,
        i -> rare * perEntry, fixed, 1, Integer.MAX_VALUE / 8, 4);
    Built b = build(pool, fit.units(), common, rare, shuffleSeed);
    StringBuilder answer = new StringBuilder("The " + COMMON_WORDS + " most common words in the list are: ");
    answer.append(String.join(", ", b.commonInOrder)).append('.');
    return new TaskRecord(TaskGenerator.id(Task.CWE, seed), Task.CWE.id(), seed, length, fit.tokens(), null,
        fit.prompt(), answer.toString(), b.commonInOrder, null);
  }

  private record Built(String prompt, List<String> commonInOrder) {}

  // The list of K common words x common and n rare words x rare, shuffled (Fisher-Yates on a
  // stream of its own, so the order depends only on the seed and n), numbered from 1.
  private static Built build(Pool pool, int n, int common, int rare, long shuffleSeed) {
    List<String> list = new ArrayList<>(COMMON_WORDS * common + n * rare);
    for (int w = 0; w < COMMON_WORDS; ++w) {
      for (int r = 0; r < common; ++r) list.add(pool.get(w));
    }
    for (int w = 0; w < n; ++w) {
      for (int r = 0; r < rare; ++r) list.add(pool.get(COMMON_WORDS + w));
    }
    SplittableRandom rng = new SplittableRandom(shuffleSeed);
    for (int i = list.size() - 1; i > 0; --i) {
      int j = rng.nextInt(i + 1);
      String t = list.get(i);
      list.set(i, list.get(j));
      list.set(j, t);
    }
    Set<String> commonWords = new HashSet<>(pool.words.subList(0, COMMON_WORDS));
    Set<String> order = new LinkedHashSet<>();
    StringBuilder sb = new StringBuilder(PREFIX.length() + list.size() * 12 + 96);
    sb.append(PREFIX);
    for (int i = 0; i < list.size(); ++i) {
      if (i > 0) {
        sb.append(' ');
      }
      sb.append(i + 1).append(". ").append(list.get(i));
      if (commonWords.contains(list.get(i))) {
        order.add(list.get(i));
      }
    }
    sb.append(suffix());
    return new Built(sb.toString(), List.copyOf(order));
  }
}
