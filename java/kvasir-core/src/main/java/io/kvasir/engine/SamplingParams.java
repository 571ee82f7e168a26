package io.kvasir.engine;

/**
 * How the next token is drawn, with OpenAI/transformers semantics. {@code temperature == 0} is
 * greedy (argmax, lowest id on ties). The random draw for a token is a pure function of
 * ({@code seed}, request, position), so a seeded request reproduces whatever else is batched.
 *
 * @param topK              0 = off
 * @param topP              1 = off, in (0, 1]
 * @param minP              0 = off, in [0, 1]
 * @param repetitionPenalty 1 = off; positive logits of seen tokens are divided by it, negative multiplied
 */
public record SamplingParams(float temperature, int topK, float topP, float minP, float repetitionPenalty, long seed) {
  public SamplingParams {
    if (!(temperature >= 0) || Float.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature=" + temperature + " must be finite and >= 0");
    }
    if (topK < 0) {
      throw new IllegalArgumentException("top_k=" + topK + " must be >= 0 (0 = off)");
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("top_p=" + topP + " must be in (0, 1]");
    }
    if (!(minP >= 0 && minP <= 1)) {
      throw new IllegalArgumentException("min_p=" + minP + " must be in [0, 1]");
    }
    if (!(repetitionPenalty > 0) || Float.isInfinite(repetitionPenalty)) {
      throw new IllegalArgumentException("repetition_penalty=" + repetitionPenalty + " must be finite and > 0");
    }
  }

  /** Greedy decoding. */
  public static SamplingParams greedy() {
    return new SamplingParams(0f, 0, 1f, 0f, 1f, 0);
  }

  /** Plain sampling at a temperature with a seed. */
  public static SamplingParams sample(float temperature, long seed) {
    return new SamplingParams(temperature, 0, 1f, 0f, 1f, seed);
  }

  public SamplingParams withTopP(float p) {
    return new SamplingParams(temperature, topK, p, minP, repetitionPenalty, seed);
  }

  public SamplingParams withTopK(int k) {
    return new SamplingParams(temperature, k, topP, minP, repetitionPenalty, seed);
  }

  public SamplingParams withMinP(float p) {
    return new SamplingParams(temperature, topK, topP, p, repetitionPenalty, seed);
  }

  public SamplingParams withRepetitionPenalty(float penalty) {
    return new SamplingParams(temperature, topK, topP, minP, penalty, seed);
  }
}
