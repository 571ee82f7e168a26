package io.kvasir.bench.tasks;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The haystack tasks: needles (sentences with the facts asked about) inserted between haystack
 * sentences at depth fractions, with an instruction before the haystack and a question after.
 */
final class NeedleTasks {
  static final String PASSKEY_PREFIX =
      "There is an important pass key hidden inside a lot of irrelevant text. Find it and memorize it.\n\n";
  static final String PASSKEY_SUFFIX = "\n\nWhat is the pass key?";
  static final String NIAH_PREFIX =
      "Some special magic numbers are hidden within the following text. Make sure to memorize them.\n\n";
  static final String VARIABLE_PREFIX =
      "Memorize and track the chain of variable assignments hidden in the following text.\n\n";

  /** Tokens the haystack estimate aims below the budget (plus one per needle: its joins are estimated). */
  static final int FIT_SLACK_TOKENS = 4;
  /** Needles of a multi-needle task. */
  static final int MULTI_NEEDLES = 4;
  /** Needles of the multi-query task, every one of them asked about. */
  static final int MULTIQUERY_NEEDLES = 6;
  /** Variables of the variable-tracking chain. */
  static final int CHAIN_VARIABLES = 5;

  /** What a task puts around the haystack; needles are in ascending depth order. */
  private record Layout(String prefix, String suffix, String[] needles, double[] depths, String answer,
      List<String> values, boolean recordDepth) {}

  private NeedleTasks() {}

  static TaskRecord generate(Task task, long seed, int length, Haystack haystack, TokenCounter counter,
      Double fixedDepth) {
    SplittableRandom rng = task.random(seed);
    int start = rng.nextInt(haystack.size());
    Layout layout = switch (task) {
      case PASSKEY -> passkey(rng, fixedDepth);
      case NIAH_SINGLE -> niahSingle(rng, fixedDepth);
      case NIAH_MULTIKEY -> niahMultikey(rng);
      case NIAH_MULTIVALUE -> niahMultivalue(rng);
      case VARIABLE_TRACKING -> variableTracking(rng);
      case NIAH_MULTIQUERY -> niahMultiquery(rng);
      default -> throw new IllegalArgumentException(task + " is not a needle task");
    };
    double fixed = counter.count(layout.prefix()) + counter.count(layout.suffix());
    for (String needle : layout.needles()) {
      fixed += counter.count(" " + needle);
    }
    Fitter.Fit fit = Fitter.fit(task, counter, length, n -> build(haystack, start, n, layout),
        i -> haystack.unitTokens(counter, start + i), fixed, 0, Integer.MAX_VALUE / 2,
        FIT_SLACK_TOKENS + layout.needles().length);
    Double depth = null;
    if (layout.recordDepth()) {
      int n = fit.units();
      depth = round4(n == 0 ? layout.depths()[0] : (double) positions(layout.depths(), n)[0] / n);
    }
    return new TaskRecord(TaskGenerator.id(task, seed), task.id(), seed, length, fit.tokens(), depth, fit.prompt(),
        layout.answer(), layout.values(), null);
  }

  private static double round4(double x) {
    return Math.round(x * 10000.0) / 10000.0;
  }

  private static String build(Haystack haystack, int start, int n, Layout layout) {
    StringBuilder sb = new StringBuilder(layout.prefix().length() + layout.suffix().length() + n * 128);
    sb.append(layout.prefix());
    haystack.append(sb, start, n, positions(layout.depths(), n), layout.needles());
    sb.append(layout.suffix());
    return sb.toString();
  }

  /** Sentence offsets of the needles among n sentences: round(depth * n), ascending as the depths are. */
  static int[] positions(double[] depths, int n) {
    int[] p = new int[depths.length];
    for (int i = 0; i < p.length; ++i) p[i] = (int) Math.round(depths[i] * n);
    return p;
  }

  private static Layout passkey(SplittableRandom rng, Double fixedDepth) {
    String key = Words.number(rng, 5);
    double depth = depth(rng, fixedDepth);
    String needle = "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
    return new Layout(PASSKEY_PREFIX, PASSKEY_SUFFIX, new String[] {needle}, new double[] {depth},
        "The pass key is " + key + ".", List.of(key), true);
  }

  private static Layout niahSingle(SplittableRandom rng, Double fixedDepth) {
    String key = Words.freshKey(rng, new HashSet<>());
    String value = Words.number(rng, 7);
    double depth = depth(rng, fixedDepth);
    return new Layout(NIAH_PREFIX, singleQuestion(key), new String[] {magicNeedle(key, value)}, new double[] {depth},
        "The special magic number for " + key + " is: " + value + ".", List.of(value), true);
  }

  private static Layout niahMultikey(SplittableRandom rng) {
    Set<String> keys = new HashSet<>();
    Set<String> values = new HashSet<>();
    String[] key = new String[MULTI_NEEDLES];
    String[] value = new String[MULTI_NEEDLES];
    double[] depth = new double[MULTI_NEEDLES];
    for (int i = 0; i < MULTI_NEEDLES; ++i) {
      key[i] = Words.freshKey(rng, keys);
      value[i] = freshNumber(rng, 7, values);
      depth[i] = rng.nextDouble();
    }
    int asked = rng.nextInt(MULTI_NEEDLES);
    Integer[] order = byDepth(depth);
    String[] needles = new String[MULTI_NEEDLES];
    double[] sorted = new double[MULTI_NEEDLES];
    for (int i = 0; i < MULTI_NEEDLES; ++i) {
      needles[i] = magicNeedle(key[order[i]], value[order[i]]);
      sorted[i] = depth[order[i]];
    }
    return new Layout(NIAH_PREFIX, singleQuestion(key[asked]), needles, sorted,
        "The special magic number for " + key[asked] + " is: " + value[asked] + ".", List.of(value[asked]), false);
  }

  /**
   * Multi-key retrieval with every key asked, in a shuffled order: one answer sentence per key, so
   * a sample carries six key-to-value lookups instead of one (a dense drill of the key match that
   * niah_multikey measures, in the spirit of multi-query associative recall).
   */
  private static Layout niahMultiquery(SplittableRandom rng) {
    int n = MULTIQUERY_NEEDLES;
    Set<String> keys = new HashSet<>();
    Set<String> used = new HashSet<>();
    String[] key = new String[n];
    String[] value = new String[n];
    double[] depth = new double[n];
    for (int i = 0; i < n; ++i) {
      key[i] = Words.freshKey(rng, keys);
      value[i] = freshNumber(rng, 7, used);
      depth[i] = rng.nextDouble();
    }
    Integer[] order = byDepth(depth);
    String[] needles = new String[n];
    double[] sorted = new double[n];
    for (int i = 0; i < n; ++i) {
      needles[i] = magicNeedle(key[order[i]], value[order[i]]);
      sorted[i] = depth[order[i]];
    }
    int[] ask = new int[n];
    for (int i = 0; i < n; ++i) ask[i] = i;
    for (int i = n - 1; i > 0; --i) {  // Fisher-Yates
      int j = rng.nextInt(i + 1);
      int t = ask[i];
      ask[i] = ask[j];
      ask[j] = t;
    }
    List<String> askedKeys = new ArrayList<>();
    List<String> values = new ArrayList<>();
    List<String> sentences = new ArrayList<>();
    for (int i : ask) {
      askedKeys.add(key[i]);
      values.add(value[i]);
      sentences.add("The special magic number for " + key[i] + " is: " + value[i] + ".");
    }
    String question = "\n\nWhat are the special magic numbers for "
        + String.join(", ", askedKeys.subList(0, n - 1)) + " and " + askedKeys.get(n - 1) + " mentioned in the text?";
    return new Layout(NIAH_PREFIX, question, needles, sorted, String.join(" ", sentences), values, false);
  }

  private static Layout niahMultivalue(SplittableRandom rng) {
    String key = Words.freshKey(rng, new HashSet<>());
    Set<String> used = new HashSet<>();
    String[] needles = new String[MULTI_NEEDLES];
    double[] depth = new double[MULTI_NEEDLES];
    List<String> values = new ArrayList<>();
    for (int i = 0; i < MULTI_NEEDLES; ++i) {
      values.add(freshNumber(rng, 7, used));
      depth[i] = rng.nextDouble();
    }
    // Values in order of appearance: the i-th value goes to the i-th shallowest needle.
    Arrays.sort(depth);
    for (int i = 0; i < MULTI_NEEDLES; ++i) needles[i] = magicNeedle(key, values.get(i));
    String question = "\n\nWhat are all the special magic numbers for " + key + " mentioned in the text?";
    String answer = "The special magic numbers for " + key + " are: " + String.join(", ", values) + ".";
    return new Layout(NIAH_PREFIX, question, needles, depth, answer, values, false);
  }

  private static Layout variableTracking(SplittableRandom rng) {
    Set<String> used = new HashSet<>();
    List<String> names = new ArrayList<>();
    for (int i = 0; i < CHAIN_VARIABLES; ++i) names.add(Words.freshName(rng, 5, used));
    String value = Words.number(rng, 5);
    double[] depth = new double[CHAIN_VARIABLES];
    for (int i = 0; i < CHAIN_VARIABLES; ++i) depth[i] = rng.nextDouble();
    Arrays.sort(depth);  // statements in chain order at increasing depths
    String[] needles = new String[CHAIN_VARIABLES];
    needles[0] = "VAR " + names.get(0) + " = " + value + ".";
    for (int i = 1; i < CHAIN_VARIABLES; ++i) needles[i] = "VAR " + names.get(i) + " = VAR " + names.get(i - 1) + ".";
    String suffix = "\n\nFind all variables that are assigned the value " + value + " in the text above.";
    String answer = "The variables assigned the value " + value + " are: " + String.join(", ", names) + ".";
    return new Layout(VARIABLE_PREFIX, suffix, needles, depth, answer, names, false);
  }

  private static String singleQuestion(String key) {
    return "\n\nWhat is the special magic number for " + key + " mentioned in the text?";
  }

  static String magicNeedle(String key, String value) {
    return "One of the special magic numbers for " + key + " is: " + value + ".";
  }

  // Drawn even when the depth is fixed, so a fixed depth moves the needle and changes nothing else.
  private static double depth(SplittableRandom rng, Double fixedDepth) {
    double d = rng.nextDouble();
    return fixedDepth != null ? fixedDepth : d;
  }

  private static String freshNumber(SplittableRandom rng, int digits, Set<String> used) {
    while (true) {
      String v = Words.number(rng, digits);
      if (used.add(v)) {
        return v;
      }
    }
  }

  private static Integer[] byDepth(double[] depth) {
    Integer[] order = new Integer[depth.length];
    for (int i = 0; i < order.length; ++i) order[i] = i;
    Arrays.sort(order, Comparator.comparingDouble(i -> depth[i]));  // stable: ties keep draw order
    return order;
  }
}
