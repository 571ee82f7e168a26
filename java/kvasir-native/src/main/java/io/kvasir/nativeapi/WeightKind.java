package io.kvasir.nativeapi;

/** Mirrors {@code kv_weight_kind}: which weight tensor of the model a checkpoint tensor fills. */
public enum WeightKind {
  EMBED(0, true),
  FINAL_NORM(1, true),
  LM_HEAD(2, true),
  ATTN_NORM(3, false),
  Q(4, false),
  K(5, false),
  V(6, false),
  O(7, false),
  Q_BIAS(8, false),
  K_BIAS(9, false),
  V_BIAS(10, false),
  Q_NORM(11, false),
  K_NORM(12, false),
  MLP_NORM(13, false),
  GATE(14, false),
  UP(15, false),
  DOWN(16, false);

  private final int code;
  private final boolean modelLevel;

  WeightKind(int code, boolean modelLevel) {
    this.code = code;
    this.modelLevel = modelLevel;
  }

  /** The {@code kv_weight_kind} value. */
  public int code() {
    return code;
  }

  /** Whether the weight belongs to the model (layer -1) rather than to each layer. */
  public boolean modelLevel() {
    return modelLevel;
  }
}
