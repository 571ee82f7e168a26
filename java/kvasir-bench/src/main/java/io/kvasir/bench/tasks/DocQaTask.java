package io.kvasir.bench.tasks;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code docqa}: independent documents (short haystack chunks, each with one fact) and a question
 * about one of them. The prompt's parts mark the shared text (block 0) and each document (its own
 * block), for attention that keeps documents independent.
 */
final class DocQaTask {
  static final String PREFIX = "Answer the question using the documents below.\n\n";
  static final int MIN_DOCUMENTS = 2;
  static final int MAX_DOCUMENTS = 64;

  private DocQaTask() {}

  private record Doc(String text, String key, String value) {}

  static String question(String key) {
    return "Question: What is the code of the " + key + " archive?";
  }

  static String fact(String key, String value) {
    return "The code of the " + key + " archive is " + value + ".";
  }

  static TaskRecord generate(long seed, int length, Haystack haystack, TokenCounter counter) {
    SplittableRandom rng = Task.DOCQA.random(seed);
    double askedFraction = rng.nextDouble();
    Set<String> keys = new HashSet<>();
    List<Doc> docs = new ArrayList<>();
    for (int i = 1; i <= MAX_DOCUMENTS; ++i) {
      int start = rng.nextInt(haystack.size());
      int sentences = 2 + rng.nextInt(4);
      int at = rng.nextInt(sentences + 1);
      String key = Words.freshKey(rng, keys);
      String value = Words.number(rng, 6);
      StringBuilder sb = new StringBuilder("Document ").append(i).append(": ");
      haystack.append(sb, start, sentences, new int[] {at}, new String[] {fact(key, value)});
      docs.add(new Doc(sb.append("\n\n").toString(), key, value));
    }
    double[] cost = new double[MAX_DOCUMENTS];
    java.util.Arrays.fill(cost, -1);
    double fixed = counter.count(PREFIX) + counter.count(question(docs.get(0).key()));
    Fitter.Fit fit = Fitter.fit(Task.DOCQA, counter, length, n -> build(docs, n, askedFraction), i -> {
      if (cost[i] < 0) {
        cost[i] = counter.count(docs.get(i).text());
      }
      return cost[i];
    }, fixed, MIN_DOCUMENTS, MAX_DOCUMENTS, 4);
    int k = fit.units();
    Doc asked = docs.get(asked(askedFraction, k));
    List<TaskRecord.Part> parts = new ArrayList<>();
    parts.add(new TaskRecord.Part(PREFIX, 0));
    for (int i = 0; i < k; ++i) parts.add(new TaskRecord.Part(docs.get(i).text(), i + 1));
    parts.add(new TaskRecord.Part(question(asked.key()), 0));
    return new TaskRecord(TaskGenerator.id(Task.DOCQA, seed), Task.DOCQA.id(), seed, length, fit.tokens(), null,
        fit.prompt(), fact(asked.key(), asked.value()), List.of(asked.value()), parts);
  }

  private static int asked(double fraction, int n) {
    return Math.min(n - 1, (int) (fraction * n));
  }

  private static String build(List<Doc> docs, int n, double askedFraction) {
    StringBuilder sb = new StringBuilder(PREFIX);
    for (int i = 0; i < n; ++i) sb.append(docs.get(i).text());
    return sb.append(question(docs.get(asked(askedFraction, n)).key())).toString();
  }
}
