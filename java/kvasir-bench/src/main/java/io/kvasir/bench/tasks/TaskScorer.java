package io.kvasir.bench.tasks;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Exact-match scoring of a model's output against a record's values. The output is first cut at
 * the first {@code <|end|>} or {@code <|endoftext|>} (end markers a template or a trained model
 * may write as text). {@code arithmetic} is correct when the last "answer is N" states the
 * value; {@code cwe} when the set of list-shaped words in the output (runs of ASCII letters,
 * lower-cased, of the shape of {@code CommonWordsTask.WORD}) is the set of values; every other
 * task when each value occurs as a whole token (no letter or digit right before or after it, so
 * 1234 inside 91234 does not count).
 */
public final class TaskScorer {
  private static final List<String> END_MARKERS = List.of("<|end|>", "<|endoftext|>");
  private static final Pattern FINAL_ANSWER = Pattern.compile("answer is (-?\\d+)");
  private static final Pattern LETTERS = Pattern.compile("[A-Za-z]+");

  /** Whether the output is right, and the fraction of the values it holds (0 or 1 for arithmetic). */
  public record Score(boolean correct, double partial) {}

  private TaskScorer() {}

  public static Score score(String task, List<String> values, String output) {
    String text = cut(output == null ? "" : output);
    if (Task.ARITHMETIC.id().equals(task)) {
      String last = null;
      Matcher m = FINAL_ANSWER.matcher(text);
      while (m.find()) {
        last = m.group(1);
      }
      boolean ok = last != null && !values.isEmpty() && last.equals(values.get(0));
      return new Score(ok, ok ? 1 : 0);
    }
    if (values.isEmpty()) {
      return new Score(false, 0);
    }
    if (Task.CWE.id().equals(task)) {
      return commonWords(values, text);
    }
    int found = 0;
    for (String v : values) {
      if (containsToken(text, v)) {
        ++found;
      }
    }
    return new Score(found == values.size(), found / (double) values.size());
  }

  public static Score score(TaskRecord record, String output) {
    return score(record.task(), record.values(), output);
  }

  public static boolean correct(String task, List<String> values, String output) {
    return score(task, values, output).correct();
  }

  // cwe: the set of list-shaped words in the output must be the set of values (order and repeats
  // free; a further list word makes it wrong); partial is the fraction of the values named.
  private static Score commonWords(List<String> values, String text) {
    java.util.Set<String> named = new java.util.HashSet<>();
    Matcher m = LETTERS.matcher(text);
    while (m.find()) {
      String w = m.group().toLowerCase(java.util.Locale.ROOT);
      if (CommonWordsTask.WORD.matcher(w).matches()) {
        named.add(w);
      }
    }
    java.util.Set<String> want = new java.util.HashSet<>(values);
    int found = 0;
    for (String v : want) {
      if (named.contains(v)) {
        ++found;
      }
    }
    return new Score(named.equals(want), found / (double) want.size());
  }

  /** The output up to the first end marker. */
  static String cut(String output) {
    int end = output.length();
    for (String marker : END_MARKERS) {
      int at = output.indexOf(marker);
      if (at >= 0) {
        end = Math.min(end, at);
      }
    }
    return output.substring(0, end);
  }

  /** Whether {@code value} occurs in {@code text} with no ASCII letter or digit on either side. */
  static boolean containsToken(String text, String value) {
    if (value.isEmpty()) {
      return false;
    }
    for (int at = text.indexOf(value); at >= 0; at = text.indexOf(value, at + 1)) {
      int after = at + value.length();
      if ((at == 0 || !isWordChar(text.charAt(at - 1))) && (after == text.length() || !isWordChar(text.charAt(after)))) {
        return true;
      }
    }
    return false;
  }

  private static boolean isWordChar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  }
}
