package io.kvasir.bench.tasks;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/** {@code kv_retrieval}: a JSON object of random hex keys and values, and one key to look up. */
final class KvRetrievalTask {
  static final String PREFIX = "Extract the value corresponding to the specified key in the JSON object below.\n\n{";
  /** Pairs counted together to estimate the tokens of one. */
  private static final int SAMPLE_PAIRS = 64;

  private KvRetrievalTask() {}

  /** The pairs of one record, drawn on demand from their own stream so the n-th pair never depends on how many were drawn. */
  private static final class Pairs {
    final SplittableRandom rng;
    final Set<String> keys = new HashSet<>();
    final List<String> key = new ArrayList<>();
    final List<String> value = new ArrayList<>();
    final List<String> text = new ArrayList<>();

    Pairs(SplittableRandom rng) {
      this.rng = rng;
    }

    void ensure(int n) {
      while (key.size() < n) {
        String k = freshHex();
        String v = Words.hex(rng, 8);
        key.add(k);
        value.add(v);
        text.add("\"" + k + "\": \"" + v + "\"");
      }
    }

    private String freshHex() {
      while (true) {
        String k = Words.hex(rng, 8);
        if (keys.add(k)) {
          return k;
        }
      }
    }
  }

  static String suffix(String key) {
    return "}\n\nKey: \"" + key + "\"\nThe value associated with the specified key is:";
  }

  static TaskRecord generate(long seed, int length, TokenCounter counter) {
    SplittableRandom rng = Task.KV_RETRIEVAL.random(seed);
    double askedFraction = rng.nextDouble();
    Pairs pairs = new Pairs(rng.split());
    pairs.ensure(SAMPLE_PAIRS);
    double perPair = counter.count(String.join(", ", pairs.text)) / (double) SAMPLE_PAIRS;
    double fixed = counter.count(PREFIX) + counter.count(suffix(pairs.key.get(0)));
    Fitter.Fit fit = Fitter.fit(Task.KV_RETRIEVAL, counter, length, n -> build(pairs, n, askedFraction), i -> perPair,
        fixed, 1, Integer.MAX_VALUE / 2, 4);
    String value = pairs.value.get(asked(askedFraction, fit.units()));
    return new TaskRecord(TaskGenerator.id(Task.KV_RETRIEVAL, seed), Task.KV_RETRIEVAL.id(), seed, length,
        fit.tokens(), null, fit.prompt(), value, List.of(value), null);
  }

  private static int asked(double fraction, int n) {
    return Math.min(n - 1, (int) (fraction * n));
  }

  private static String build(Pairs pairs, int n, double askedFraction) {
    pairs.ensure(n);
    StringBuilder sb = new StringBuilder(PREFIX.length() + 24 * n + 96);
    sb.append(PREFIX);
    for (int i = 0; i < n; ++i) {
      if (i > 0) {
        sb.append(", ");
      }
      sb.append(pairs.text.get(i));
    }
    sb.append(suffix(pairs.key.get(asked(askedFraction, n))));
    return sb.toString();
  }
}
