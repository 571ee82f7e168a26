package io.kvasir.engine;

import java.util.List;

/**
 * Log-probabilities of one generated token, as OpenAI's {@code logprobs} reports them (and vLLM's
 * default): natural-log softmax, computed in double, of the model's raw fp32 logits at that
 * position, before temperature, top-k/top-p/min-p and repetition penalty. They describe the
 * model's distribution, not the filtered one the token was drawn from, so a sampled token may have
 * a low log-probability and the alternatives include tokens the filters excluded.
 *
 * @param token   the generated token
 * @param text    its text alone (the tokenizer's decode of the single id), null without a tokenizer
 * @param logprob its log-probability
 * @param top     the {@code topLogprobs} most likely tokens, most likely first (ties: lower id first)
 */
public record TokenLogprobs(int token, String text, double logprob, List<Alternative> top) {
  /** One of the most likely tokens at a position. */
  public record Alternative(int token, String text, double logprob) {}

  public TokenLogprobs {
    top = List.copyOf(top);
  }

  /**
   * Computes the log-probabilities from one position's logits.
   *
   * @param logits fp32 logits, [vocab]
   * @param codec  decodes single tokens to text; may be null
   */
  static TokenLogprobs of(float[] logits, int token, int topK, TextCodec codec) {
    double max = Double.NEGATIVE_INFINITY;
    for (float l : logits) {
      max = Math.max(max, l);
    }
    double sum = 0;
    for (float l : logits) {
      sum += Math.exp(l - max);
    }
    double logZ = max + Math.log(sum);
    // Top-k by a partial selection: k <= 20, so k passes over the vocabulary are cheap enough next to a step.
    int[] best = new int[Math.min(topK, logits.length)];
    boolean[] taken = new boolean[logits.length];
    for (int k = 0; k < best.length; ++k) {
      int arg = -1;
      for (int v = 0; v < logits.length; ++v) {
        if (!taken[v] && (arg < 0 || logits[v] > logits[arg])) {
          arg = v;
        }
      }
      taken[arg] = true;
      best[k] = arg;
    }
    Alternative[] top = new Alternative[best.length];
    for (int k = 0; k < best.length; ++k) {
      top[k] = new Alternative(best[k], text(codec, best[k]), logits[best[k]] - logZ);
    }
    return new TokenLogprobs(token, text(codec, token), logits[token] - logZ, List.of(top));
  }

  private static String text(TextCodec codec, int token) {
    return codec == null ? null : codec.decode(new int[] {token});
  }
}
