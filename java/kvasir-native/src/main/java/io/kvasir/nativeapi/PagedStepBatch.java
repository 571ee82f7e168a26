package io.kvasir.nativeapi;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * One step over a {@link PagedKvCache}: for each sequence its page table, the position of its
 * first new token, the new tokens and how to sample; and how decode tokens pick their pages
 * (every page, or Quest's top-K). Run by {@link Model#stepPaged}.
 */
public final class PagedStepBatch {
  /** Page selection of decode tokens ({@code kv_selection}). */
  public enum Selection {
    ALL(0),
    QUEST(1);

    final int code;

    Selection(int code) {
      this.code = code;
    }
  }

  private record Entry(int[] pageTable, int startPosition, int[] tokens, StepBatch.Sampling sampling) {}

  private final List<Entry> entries = new ArrayList<>();
  private Selection selection = Selection.ALL;
  private int topK;
  private boolean wantLogits;

  /**
   * Adds a sequence: {@code tokens} are its new tokens from {@code startPosition}; {@code pageTable}
   * holds its physical pages in logical order, enough for {@code startPosition + tokens.length}.
   */
  public PagedStepBatch add(int[] pageTable, int startPosition, int[] tokens, StepBatch.Sampling sampling) {
    Objects.requireNonNull(pageTable, "pageTable");
    Objects.requireNonNull(tokens, "tokens");
    Objects.requireNonNull(sampling, "sampling");
    if (tokens.length == 0) {
      throw new IllegalArgumentException("a sequence at position " + startPosition + " has no new tokens");
    }
    entries.add(new Entry(pageTable.clone(), startPosition, tokens.clone(), sampling));
    return this;
  }

  /** Decode tokens attend Quest's {@code topKPages} pages (the newest included). */
  public PagedStepBatch quest(int topKPages) {
    if (topKPages < 1) {
      throw new IllegalArgumentException("Quest needs topKPages >= 1, not " + topKPages);
    }
    selection = Selection.QUEST;
    topK = topKPages;
    return this;
  }

  /** Also return the logits of each sequence's last new position. */
  public PagedStepBatch withLogits() {
    wantLogits = true;
    return this;
  }

  public int size() {
    return entries.size();
  }

  boolean wantLogits() {
    return wantLogits;
  }

  int[] policy() {
    return selection == Selection.ALL ? null : new int[] {selection.code, topK};
  }

  int tableStride() {
    int stride = 1;
    for (Entry e : entries) {
      stride = Math.max(stride, e.pageTable().length);
    }
    return stride;
  }

  /** [size][tableStride] page tables, rows padded with page 0 (never read: past each sequence's length). */
  int[] pageTables(int stride) {
    int[] out = new int[Math.multiplyExact(size(), stride)];
    for (int i = 0; i < size(); ++i) {
      int[] t = entries.get(i).pageTable();
      System.arraycopy(t, 0, out, i * stride, t.length);
    }
    return out;
  }

  int[] startPositions() {
    return entries.stream().mapToInt(Entry::startPosition).toArray();
  }

  int[] newTokenCounts() {
    return entries.stream().mapToInt(e -> e.tokens().length).toArray();
  }

  int[] tokens() {
    return entries.stream().flatMapToInt(e -> Arrays.stream(e.tokens())).toArray();
  }

  SamplingColumns samplingColumns() {
    return SamplingColumns.of(entries.stream().map(Entry::sampling).toList());
  }
}
