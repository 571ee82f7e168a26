package io.kvasir.policy.spi;

/**
 * What a component sees of a step before it runs: the sequences in it and how much each one
 * decodes or prefills.
 */
public interface StepView {
  /** Sequences in the step. */
  int size();

  long seqId(int i);

  /** Tokens whose K and V are cached before the step. */
  int kvLenBefore(int i);

  /** Tokens the step computes for the sequence (1 for a decode). */
  int newTokens(int i);

  /** Whether the sequence decodes (one token after a complete prompt) in this step. */
  default boolean isDecode(int i) {
    return newTokens(i) == 1 && kvLenBefore(i) > 0;
  }
}
