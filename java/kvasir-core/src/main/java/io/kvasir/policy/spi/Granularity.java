package io.kvasir.policy.spi;

/** How a component needs its pages tabled. */
public enum Granularity {
  /** One page table per sequence, shared by every layer and KV head (dense policies). */
  SHARED,
  /** One page table per (sequence, layer, KV head): pages of one head (FlexiCache, eviction). */
  PER_HEAD
}
