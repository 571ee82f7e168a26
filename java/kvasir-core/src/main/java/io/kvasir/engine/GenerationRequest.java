package io.kvasir.engine;

import java.util.List;
import java.util.Objects;

/**
 * One generation: the prompt as token ids, how to sample, and when to stop.
 *
 * @param maxTokens    the most tokens to generate (>= 1)
 * @param stopTokenIds tokens that end the generation besides the model's EOS ids (not emitted)
 * @param stopStrings  texts that end the generation when they appear in the output (the output
 *                     is cut before them); needs the engine's tokenizer
 * @param ignoreEos    keep generating past the model's EOS ids (benchmarks); stop tokens still stop
 * @param returnPromptLogits also return the fp32 logits at the last prompt position
 * @param topLogprobs  -1: no log-probabilities; 0..{@value #MAX_TOP_LOGPROBS}: each streamed token
 *                     ({@link EngineLoop}) carries its {@link TokenLogprobs} with this many
 *                     alternatives (OpenAI {@code logprobs}/{@code top_logprobs})
 */
public record GenerationRequest(int[] promptTokens, int maxTokens, SamplingParams sampling, List<Integer> stopTokenIds,
    List<String> stopStrings, boolean ignoreEos, boolean returnPromptLogits, int topLogprobs) {
  /** The most alternatives a token's {@link TokenLogprobs} may carry (OpenAI's limit). */
  public static final int MAX_TOP_LOGPROBS = 20;

  public GenerationRequest {
    Objects.requireNonNull(promptTokens, "promptTokens");
    Objects.requireNonNull(sampling, "sampling");
    if (promptTokens.length == 0) {
      throw new IllegalArgumentException("the prompt is empty: at least one token is needed");
    }
    if (maxTokens < 1) {
      throw new IllegalArgumentException("max_tokens=" + maxTokens + " must be >= 1");
    }
    if (topLogprobs < -1 || topLogprobs > MAX_TOP_LOGPROBS) {
      throw new IllegalArgumentException("top_logprobs=" + topLogprobs + " must be in [0, " + MAX_TOP_LOGPROBS
          + "] (or -1: none)");
    }
    promptTokens = promptTokens.clone();
    stopTokenIds = stopTokenIds == null ? List.of() : List.copyOf(stopTokenIds);
    stopStrings = stopStrings == null ? List.of() : List.copyOf(stopStrings);
  }

  /** A request without log-probabilities. */
  public GenerationRequest(int[] promptTokens, int maxTokens, SamplingParams sampling, List<Integer> stopTokenIds,
      List<String> stopStrings, boolean ignoreEos, boolean returnPromptLogits) {
    this(promptTokens, maxTokens, sampling, stopTokenIds, stopStrings, ignoreEos, returnPromptLogits, -1);
  }

  /** A request with default stops: the model's EOS ids only. */
  public static GenerationRequest of(int[] promptTokens, int maxTokens, SamplingParams sampling) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, List.of(), List.of(), false, false);
  }

  public GenerationRequest withStopStrings(List<String> stops) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, stopTokenIds, stops, ignoreEos, returnPromptLogits,
        topLogprobs);
  }

  public GenerationRequest withStopTokenIds(List<Integer> ids) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, ids, stopStrings, ignoreEos, returnPromptLogits,
        topLogprobs);
  }

  public GenerationRequest withIgnoreEos(boolean ignore) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, stopTokenIds, stopStrings, ignore,
        returnPromptLogits, topLogprobs);
  }

  public GenerationRequest withPromptLogits(boolean logits) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, stopTokenIds, stopStrings, ignoreEos, logits,
        topLogprobs);
  }

  /**
   * Streams each generated token's log-probability and its {@code topLogprobs} most likely
   * alternatives (0..{@value #MAX_TOP_LOGPROBS}) through {@link StreamListener#onToken}; only
   * {@link EngineLoop} reports them. Costs a copy of the step's logits for such requests.
   */
  public GenerationRequest withLogprobs(int topLogprobs) {
    if (topLogprobs < 0) {
      throw new IllegalArgumentException("top_logprobs=" + topLogprobs + " must be in [0, " + MAX_TOP_LOGPROBS + "]");
    }
    return new GenerationRequest(promptTokens, maxTokens, sampling, stopTokenIds, stopStrings, ignoreEos,
        returnPromptLogits, topLogprobs);
  }

  /** Whether streamed tokens carry {@link TokenLogprobs}. */
  public boolean wantsLogprobs() {
    return topLogprobs >= 0;
  }

  @Override
  public int[] promptTokens() {
    return promptTokens.clone();
  }
}
