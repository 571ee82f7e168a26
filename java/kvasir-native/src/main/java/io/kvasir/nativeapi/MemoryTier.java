package io.kvasir.nativeapi;

/** Mirrors {@code kv_mem_tier}. */
public enum MemoryTier {
  /** cudaMalloc on CUDA; 256-byte aligned host memory on the CPU backend. */
  DEVICE(0),
  /** Page-locked, mapped host memory: CUDA kernels read it in place. */
  PINNED_HOST(1),
  /** Plain host memory, 256-byte aligned. */
  HOST(2);

  private final int code;

  MemoryTier(int code) {
    this.code = code;
  }

  /** The {@code kv_mem_tier} value. */
  public int code() {
    return code;
  }

  /** The tier with this code; an unknown code is a library newer than these bindings. */
  public static MemoryTier fromCode(int code) {
    for (MemoryTier t : values()) {
      if (t.code == code) {
        return t;
      }
    }
    throw new IllegalArgumentException("unknown kv_mem_tier value " + code);
  }
}
