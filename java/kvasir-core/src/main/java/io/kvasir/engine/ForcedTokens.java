package io.kvasir.engine;

import java.util.ArrayList;
import java.util.List;

/**
 * Teacher forcing of one request ({@link Engine#forceDecode}): the tokens the run commits in place
 * of the sampled ones, and the logits of every step that produced one. The sampler still runs;
 * the run only overrides the token it hands on, so the request takes exactly the path of a
 * generated one (prefill, then one decode step per token, under the policy's page selection).
 */
final class ForcedTokens {
  final int[] tokens;
  /** Element i: the fp32 logits after the prompt and {@code tokens[0..i-1]} (the distribution of {@code tokens[i]}). */
  final List<float[]> logits = new ArrayList<>();

  ForcedTokens(int[] tokens) {
    this.tokens = tokens.clone();
  }

  boolean done() {
    return logits.size() >= tokens.length;
  }

  /** Records a step's logits and returns the token to commit instead of the sampled one. */
  int force(float[] stepLogits) {
    logits.add(stepLogits);
    return tokens[logits.size() - 1];
  }

  float[][] result() {
    return logits.toArray(new float[0][]);
  }
}
