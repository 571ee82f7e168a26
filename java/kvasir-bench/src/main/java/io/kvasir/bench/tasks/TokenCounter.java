package io.kvasir.bench.tasks;

/**
 * Counts the tokens of a text, as the generator measures prompts against their length budget.
 * Implementations are thread-safe (records are generated in parallel).
 */
@FunctionalInterface
public interface TokenCounter {
  /** Tokens of {@code text} on its own, without special tokens (BOS, chat markers). */
  int count(String text);
}
