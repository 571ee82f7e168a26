package io.kvasir.nativeapi;

import java.util.Arrays;

/** What one step returned: each sequence's next token and, if asked for, its last logits. */
public final class StepResult {
  private final int[] sampled;
  private final float[] logits;
  private final int vocab;

  StepResult(int[] sampled, float[] logits, int vocab) {
    this.sampled = sampled;
    this.logits = logits;
    this.vocab = vocab;
  }

  /** The sampled next token of the {@code i}-th sequence of the batch. */
  public int token(int i) {
    return sampled[i];
  }

  /** The fp32 logits at the {@code i}-th sequence's last new position (the batch asked for logits). */
  public float[] logits(int i) {
    if (logits == null) {
      throw new IllegalStateException("the step did not ask for logits (StepBatch.withLogits())");
    }
    return Arrays.copyOfRange(logits, i * vocab, (i + 1) * vocab);
  }
}
