package io.kvasir.engine;

/**
 * Timing and size of one generation.
 *
 * @param promptTokens    tokens in the prompt
 * @param generatedTokens tokens generated (stop tokens excluded)
 * @param ttftMillis      from submission to the first generated token
 * @param decodeMillis    from the first generated token to the last
 * @param kvBytes         KV-cache bytes the sequence occupies at the end
 */
public record GenerationStats(int promptTokens, int generatedTokens, double ttftMillis, double decodeMillis,
    long kvBytes) {

  /** Decode throughput after the first token; NaN for a single token. */
  public double decodeTokensPerSecond() {
    return generatedTokens > 1 ? (generatedTokens - 1) / (decodeMillis / 1000.0) : Double.NaN;
  }
}
