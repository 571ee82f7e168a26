package io.kvasir.engine;

import io.kvasir.nativeapi.KvCache;
import io.kvasir.nativeapi.Model;
import io.kvasir.nativeapi.StepBatch;
import io.kvasir.nativeapi.StepResult;
import java.util.ArrayList;
import java.util.List;

/**
 * Teacher-forced scoring of token sequences (perplexity): each sequence in its own cache slot is
 * fed one given token per step and the logits of that position give the log-probability of the
 * next given token. One position per step because a native step returns logits at each
 * sequence's last new position only; the sequences of a group share every step.
 */
final class TokenScorer {
  private TokenScorer() {}

  /**
   * Scores up to {@code cache.slots()} sequences together.
   *
   * @return per sequence, {@code length - 1} natural-log probabilities: element {@code i} is
   *     {@code log p(seq[i + 1] | seq[0..i])}
   */
  static List<float[]> score(Model model, KvCache cache, List<int[]> seqs, long firstRequestId) {
    if (seqs.size() > cache.slots()) {
      throw new IllegalArgumentException(seqs.size() + " sequences do not fit the " + cache.slots() + " cache slots");
    }
    int longest = 0;
    List<float[]> out = new ArrayList<>();
    for (int[] s : seqs) {
      if (s.length == 0) {
        throw new IllegalArgumentException("a sequence to score is empty");
      }
      if (s.length > cache.capacity()) {
        throw new IllegalArgumentException("a sequence of " + s.length + " tokens does not fit the context of "
            + cache.capacity());
      }
      longest = Math.max(longest, s.length);
      out.add(new float[s.length - 1]);
    }
    for (int pos = 0; pos + 1 < longest; ++pos) {
      StepBatch batch = new StepBatch().withLogits();
      List<Integer> active = new ArrayList<>();
      for (int i = 0; i < seqs.size(); ++i) {
        int[] s = seqs.get(i);
        if (pos + 1 < s.length) {
          batch.add(i, pos, new int[] {s[pos]}, StepBatch.Sampling.greedy(firstRequestId + i));
          active.add(i);
        }
      }
      StepResult result = model.step(cache, batch);
      for (int k = 0; k < active.size(); ++k) {
        int i = active.get(k);
        out.get(i)[pos] = (float) logSoftmaxAt(result.logits(k), seqs.get(i)[pos + 1]);
      }
    }
    return out;
  }

  /** {@code log softmax(logits)[token]}, accumulated in double. */
  static double logSoftmaxAt(float[] logits, int token) {
    float max = Float.NEGATIVE_INFINITY;
    for (float x : logits) {
      max = Math.max(max, x);
    }
    double sum = 0;
    for (float x : logits) {
      sum += Math.exp((double) x - max);
    }
    return (double) logits[token] - max - Math.log(sum);
  }
}
