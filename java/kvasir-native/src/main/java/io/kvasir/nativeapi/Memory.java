package io.kvasir.nativeapi;

import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;

/**
 * The library's live-allocation counters. They cover every allocation it makes (buffers and
 * internal records, such as a CUDA stream's error record), so a test can assert that all return
 * to where they started.
 */
public final class Memory {
  private Memory() {}

  /** Live allocations on one tier. */
  public static MemoryStats live(MemoryTier tier) {
    Objects.requireNonNull(tier, "tier");
    Kvasir.ensureLoaded();
    long[] count = new long[1];
    long[] bytes = new long[1];
    KvasirException.check(KvasirLibrary.kv_mem_live(tier.code(), count, bytes));
    return new MemoryStats(tier, count[0], bytes[0]);
  }

  /** Live allocations on every tier. */
  public static Map<MemoryTier, MemoryStats> liveAll() {
    Map<MemoryTier, MemoryStats> all = new EnumMap<>(MemoryTier.class);
    for (MemoryTier tier : MemoryTier.values()) {
      all.put(tier, live(tier));
    }
    return all;
  }
}
