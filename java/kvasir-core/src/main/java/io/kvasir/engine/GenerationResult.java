package io.kvasir.engine;

/**
 * A finished generation.
 *
 * @param tokens       the generated token ids (stop tokens excluded)
 * @param text         their text when the engine has a tokenizer (cut before a stop string), else null
 * @param promptLogits the fp32 logits at the last prompt position, when the request asked for them
 */
public record GenerationResult(int[] tokens, String text, FinishReason finishReason, GenerationStats stats,
    float[] promptLogits) {}
