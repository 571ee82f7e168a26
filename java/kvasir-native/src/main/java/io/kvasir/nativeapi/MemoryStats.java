package io.kvasir.nativeapi;

/** Live allocations of the library on one tier, over all backends and devices. */
public record MemoryStats(MemoryTier tier, long count, long bytes) {}
