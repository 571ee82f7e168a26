package io.kvasir.policy.spi;

/**
 * The per-layer work of a decode step that a policy selects, run inside the native step (never a
 * Java call per layer): which pages each (sequence, KV head) attends, chosen by kernel id and
 * parameters. Prefill always attends every page.
 *
 * @param selection  how the attended pages are chosen
 * @param topKPages  pages selected per (sequence, KV head) when {@code selection} is QUEST, the
 *                   newest page included; 0 otherwise
 */
public record LayerWork(Selection selection, int topKPages) {
  /** Page selection kernels. */
  public enum Selection {
    /** Every page (kv_paged_decode_async without a selection). */
    ALL,
    /**
     * kv_quest_select_async then kv_paged_decode_async over the selection; key summaries are
     * updated as pages fill (kv_page_summary_update_async).
     */
    QUEST
  }

  public LayerWork {
    if (selection == Selection.ALL && topKPages != 0) {
      throw new IllegalArgumentException("dense attention takes no top-K (" + topKPages + ")");
    }
    if (selection == Selection.QUEST && topKPages < 1) {
      throw new IllegalArgumentException("Quest needs top-K >= 1 page, not " + topKPages);
    }
  }

  public static LayerWork all() {
    return new LayerWork(Selection.ALL, 0);
  }
}
