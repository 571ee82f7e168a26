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
 */
public record GenerationRequest(int[] promptTokens, int maxTokens, SamplingParams sampling, List<Integer> stopTokenIds,
    List<String> stopStrings, boolean ignoreEos, boolean returnPromptLogits) {

  public GenerationRequest {
    Objects.requireNonNull(promptTokens, "promptTokens");
    Objects.requireNonNull(sampling, "sampling");
    if (promptTokens.length == 0) {
      throw new IllegalArgumentException("the prompt is empty: at least one token is needed");
    }
    if (maxTokens < 1) {
      throw new IllegalArgumentException("max_tokens=" + maxTokens + " must be >= 1");
    }
    promptTokens = promptTokens.clone();
    stopTokenIds = stopTokenIds == null ? List.of() : List.copyOf(stopTokenIds);
    stopStrings = stopStrings == null ? List.of() : List.copyOf(stopStrings);
  }

  /** A request with default stops: the model's EOS ids only. */
  public static GenerationRequest of(int[] promptTokens, int maxTokens, SamplingParams sampling) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, List.of(), List.of(), false, false);
  }

  public GenerationRequest withStopStrings(List<String> stops) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, stopTokenIds, stops, ignoreEos, returnPromptLogits);
  }

  public GenerationRequest withStopTokenIds(List<Integer> ids) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, ids, stopStrings, ignoreEos, returnPromptLogits);
  }

  public GenerationRequest withIgnoreEos(boolean ignore) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, stopTokenIds, stopStrings, ignore,
        returnPromptLogits);
  }

  public GenerationRequest withPromptLogits(boolean logits) {
    return new GenerationRequest(promptTokens, maxTokens, sampling, stopTokenIds, stopStrings, ignoreEos, logits);
  }

  @Override
  public int[] promptTokens() {
    return promptTokens.clone();
  }
}
