package io.kvasir.bench.serve;

/**
 * What a serving workload is made of; {@link Workload#generate} turns it into requests.
 *
 * @param requests           how many requests
 * @param promptMin          fewest random prompt tokens per request (after the shared prefix)
 * @param promptMax          most random prompt tokens per request (inclusive; uniform in between)
 * @param outputTokens       tokens every request generates (EOS ignored)
 * @param sharedPrefixTokens tokens of one random prefix every prompt starts with (0: none)
 * @param rate               requests per second, Poisson arrivals; infinite: all arrive at once (offline)
 * @param seed               the seed of prompts, prefix and arrivals
 * @param vocabSize          token ids are uniform in [0, vocabSize)
 */
public record WorkloadSpec(int requests, int promptMin, int promptMax, int outputTokens, int sharedPrefixTokens,
    double rate, long seed, int vocabSize) {

  public WorkloadSpec {
    if (requests < 1) {
      throw new IllegalArgumentException("requests=" + requests + " must be >= 1");
    }
    if (promptMin < 1 || promptMax < promptMin) {
      throw new IllegalArgumentException("prompt lengths [" + promptMin + ", " + promptMax
          + "] must satisfy 1 <= min <= max");
    }
    if (outputTokens < 1) {
      throw new IllegalArgumentException("outputTokens=" + outputTokens + " must be >= 1");
    }
    if (sharedPrefixTokens < 0) {
      throw new IllegalArgumentException("sharedPrefixTokens=" + sharedPrefixTokens + " must be >= 0");
    }
    if (!(rate > 0)) {
      throw new IllegalArgumentException("rate=" + rate + " requests/s must be > 0 (infinite: offline)");
    }
    if (vocabSize < 1) {
      throw new IllegalArgumentException("vocabSize=" + vocabSize + " must be >= 1");
    }
  }

  /** Whether every request arrives at once. */
  public boolean offline() {
    return Double.isInfinite(rate);
  }

  /** The longest prompt: shared prefix plus the longest random part. */
  public int maxPromptTokens() {
    return sharedPrefixTokens + promptMax;
  }

  /** Tokens one sequence may need: the longest prompt and all its output. */
  public int maxContextTokens() {
    return maxPromptTokens() + outputTokens;
  }
}
