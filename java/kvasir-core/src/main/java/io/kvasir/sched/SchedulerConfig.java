package io.kvasir.sched;

/**
 * Limits of one engine step.
 *
 * @param maxBatchedTokens tokens computed per step, prefill chunks and decodes together
 * @param maxRunning       sequences holding KV pages at once
 * @param maxModelLen      prompt plus output tokens of one sequence (the model's context)
 */
public record SchedulerConfig(int maxBatchedTokens, int maxRunning, int maxModelLen) {
  public SchedulerConfig {
    if (maxBatchedTokens < 1 || maxRunning < 1 || maxModelLen < 2) {
      throw new IllegalArgumentException("scheduler limits must be positive (maxBatchedTokens=" + maxBatchedTokens
          + ", maxRunning=" + maxRunning + ", maxModelLen=" + maxModelLen + ")");
    }
    if (maxBatchedTokens < maxRunning) {
      throw new IllegalArgumentException("maxBatchedTokens=" + maxBatchedTokens + " is below maxRunning="
          + maxRunning + ": a step must fit one decode token of every running sequence");
    }
  }
}
