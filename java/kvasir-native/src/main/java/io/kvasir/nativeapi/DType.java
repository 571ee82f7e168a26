package io.kvasir.nativeapi;

/**
 * Mirrors {@code kv_dtype}: the element type of tensors. Kernels take F32 or BF16 (arithmetic is
 * fp32 in both); F16 appears only as the source type of checkpoint weights.
 */
public enum DType {
  F32(0, 4),
  /** bfloat16, handled in Java as the raw 16 bits in a {@code short}. */
  BF16(1, 2),
  /** IEEE binary16: checkpoint weights only. */
  F16(2, 2);

  private final int code;
  private final int byteSize;

  DType(int code, int byteSize) {
    this.code = code;
    this.byteSize = byteSize;
  }

  /** The {@code kv_dtype} value. */
  public int code() {
    return code;
  }

  /** Bytes per element. */
  public int byteSize() {
    return byteSize;
  }
}
