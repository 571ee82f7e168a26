package io.kvasir.nativeapi;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The plan of one model step: for each sequence its cache slot, the position of its first new
 * token, the new tokens (a prompt chunk or one decode token) and how to sample its next token.
 * Built by the engine's scheduler, run by {@link Model#step}.
 */
public final class StepBatch {
  /** How one sequence's next token is drawn; temperature 0 is greedy. */
  public record Sampling(float temperature, int topK, float topP, float minP, float repetitionPenalty, long seed,
      long requestId) {
    public static Sampling greedy(long requestId) {
      return new Sampling(0f, 0, 1f, 0f, 1f, 0, requestId);
    }
  }

  private record Entry(int slot, int startPosition, int[] tokens, Sampling sampling) {}

  private final List<Entry> entries = new ArrayList<>();
  private boolean wantLogits;

  /** Adds a sequence: {@code tokens} are its new tokens starting at {@code startPosition} in {@code slot}. */
  public StepBatch add(int slot, int startPosition, int[] tokens, Sampling sampling) {
    Objects.requireNonNull(tokens, "tokens");
    Objects.requireNonNull(sampling, "sampling");
    if (tokens.length == 0) {
      throw new IllegalArgumentException("sequence in slot " + slot + " has no new tokens");
    }
    entries.add(new Entry(slot, startPosition, tokens.clone(), sampling));
    return this;
  }

  /** Also return the logits of each sequence's last new position. */
  public StepBatch withLogits() {
    wantLogits = true;
    return this;
  }

  public int size() {
    return entries.size();
  }

  boolean wantLogits() {
    return wantLogits;
  }

  int[] slots() {
    return entries.stream().mapToInt(Entry::slot).toArray();
  }

  int[] startPositions() {
    return entries.stream().mapToInt(Entry::startPosition).toArray();
  }

  int[] newTokenCounts() {
    return entries.stream().mapToInt(e -> e.tokens().length).toArray();
  }

  int[] tokens() {
    return entries.stream().flatMapToInt(e -> java.util.Arrays.stream(e.tokens())).toArray();
  }

  SamplingColumns samplingColumns() {
    return SamplingColumns.of(entries.stream().map(Entry::sampling).toList());
  }
}
