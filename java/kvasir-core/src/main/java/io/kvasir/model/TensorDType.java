package io.kvasir.model;

import java.util.Locale;

/**
 * Element types of checkpoint tensors that Kvasir reads and writes. Safetensors names them
 * {@code BF16}, {@code F16}, {@code F32}; {@code config.json} names the same types the PyTorch way
 * ({@code bfloat16}, {@code float16}, {@code float32}) in {@code torch_dtype} (or {@code dtype}
 * since transformers 5).
 */
public enum TensorDType {
  /** bfloat16: the top 16 bits of an IEEE binary32. */
  BF16("BF16", "bfloat16", 2),
  /** IEEE binary16. */
  F16("F16", "float16", 2),
  /** IEEE binary32. */
  F32("F32", "float32", 4);

  private final String safetensorsName;
  private final String torchName;
  private final int byteSize;

  TensorDType(String safetensorsName, String torchName, int byteSize) {
    this.safetensorsName = safetensorsName;
    this.torchName = torchName;
    this.byteSize = byteSize;
  }

  /** The name in a safetensors header ({@code "BF16"}). */
  public String safetensorsName() {
    return safetensorsName;
  }

  /** The name in {@code config.json} ({@code "bfloat16"}). */
  public String torchName() {
    return torchName;
  }

  /** Bytes per element. */
  public int byteSize() {
    return byteSize;
  }

  /** The type a safetensors header names, or null when it is none of ours (I64, F8_E4M3, ...). */
  public static TensorDType fromSafetensors(String name) {
    for (TensorDType t : values()) {
      if (t.safetensorsName.equals(name)) {
        return t;
      }
    }
    return null;
  }

  /**
   * The type a {@code torch_dtype} value names, or null when unknown. Accepts the aliases
   * PyTorch prints ({@code "torch.bfloat16"}, {@code "half"}, {@code "float"}).
   */
  public static TensorDType fromTorch(String name) {
    String n = name.toLowerCase(Locale.ROOT);
    if (n.startsWith("torch.")) {
      n = n.substring("torch.".length());
    }
    switch (n) {
      case "bfloat16":
        return BF16;
      case "float16":
      case "half":
        return F16;
      case "float32":
      case "float":
        return F32;
      default:
        return null;
    }
  }

  /** {@code "BF16, F16, F32"}: for error messages. */
  public static String supportedSafetensorsNames() {
    StringBuilder sb = new StringBuilder();
    for (TensorDType t : values()) {
      if (sb.length() > 0) {
        sb.append(", ");
      }
      sb.append(t.safetensorsName);
    }
    return sb.toString();
  }
}
