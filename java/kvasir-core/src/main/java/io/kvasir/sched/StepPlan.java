package io.kvasir.sched;

import io.kvasir.cache.KvCacheManager.PageCopy;
import java.util.List;

/**
 * One engine step: page copies to run first (copy-on-write), then for every entry the K and V of
 * {@code tokens} are appended at positions {@code [startPos, startPos + tokens.length)} and, when
 * {@code sample} is set, the next token is sampled after the last of them.
 */
public record StepPlan(List<PageCopy> copies, List<Entry> entries) {
  /** One sequence's part of the step. */
  public record Entry(long seqId, int startPos, int[] tokens, boolean sample) {}

  public StepPlan {
    copies = List.copyOf(copies);
    entries = List.copyOf(entries);
  }

  public boolean isEmpty() {
    return entries.isEmpty();
  }

  /** Tokens computed by the step. */
  public int numTokens() {
    int n = 0;
    for (Entry e : entries) {
      n += e.tokens().length;
    }
    return n;
  }
}
