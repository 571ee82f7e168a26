package io.kvasir.engine;

/**
 * Timing and size of one generation. Times are milliseconds on the engine's clock; a request of
 * {@link Engine#serve} is measured from its arrival, one of {@link Engine#generateAll} from the
 * start of the call (where every request arrives at once).
 *
 * @param promptTokens     tokens in the prompt
 * @param generatedTokens  tokens generated (stop tokens excluded)
 * @param ttftMillis       from arrival to the first generated token
 * @param decodeMillis     from the first generated token to the last
 * @param kvBytes          KV-cache bytes the sequence occupies at the end
 * @param arrivalMillis    when the request arrived, from the start of the call (0 for generateAll)
 * @param interTokenMillis gaps between consecutive generated tokens ({@code generatedTokens - 1}
 *                         of them; fewer when a stop token ends the output)
 * @param cachedPromptTokens prompt tokens found in the prefix cache (or shared with the first of n
 *                         samples) rather than computed; 0 without a cache policy
 */
public record GenerationStats(int promptTokens, int generatedTokens, double ttftMillis, double decodeMillis,
    long kvBytes, double arrivalMillis, double[] interTokenMillis, int cachedPromptTokens) {

  public GenerationStats {
    interTokenMillis = interTokenMillis == null ? new double[0] : interTokenMillis.clone();
  }

  /** Stats without a prefix-cache figure (slot caches, or callers that do not know it). */
  public GenerationStats(int promptTokens, int generatedTokens, double ttftMillis, double decodeMillis, long kvBytes,
      double arrivalMillis, double[] interTokenMillis) {
    this(promptTokens, generatedTokens, ttftMillis, decodeMillis, kvBytes, arrivalMillis, interTokenMillis, 0);
  }

  /** Stats of a request that arrived at the start of the call, without inter-token gaps. */
  public GenerationStats(int promptTokens, int generatedTokens, double ttftMillis, double decodeMillis, long kvBytes) {
    this(promptTokens, generatedTokens, ttftMillis, decodeMillis, kvBytes, 0, null);
  }

  @Override
  public double[] interTokenMillis() {
    return interTokenMillis.clone();
  }

  /** When the first token came, from the start of the call. */
  public double firstTokenMillis() {
    return arrivalMillis + ttftMillis;
  }

  /** When the last token came, from the start of the call. */
  public double finishMillis() {
    return arrivalMillis + ttftMillis + decodeMillis;
  }

  /** End-to-end latency: from arrival to the last token. */
  public double latencyMillis() {
    return ttftMillis + decodeMillis;
  }

  /** Time per output token after the first (TPOT); NaN for a single token. */
  public double tpotMillis() {
    return generatedTokens > 1 ? decodeMillis / (generatedTokens - 1) : Double.NaN;
  }

  /** Decode throughput after the first token; NaN for a single token. */
  public double decodeTokensPerSecond() {
    return generatedTokens > 1 ? (generatedTokens - 1) / (decodeMillis / 1000.0) : Double.NaN;
  }
}
