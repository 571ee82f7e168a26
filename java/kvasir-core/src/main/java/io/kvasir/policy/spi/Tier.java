package io.kvasir.policy.spi;

/** Where a page's K and V may live. */
public enum Tier {
  GPU,
  /** Pinned host memory, recalled by batched page copies (kv_page_copy_async). */
  HOST
}
