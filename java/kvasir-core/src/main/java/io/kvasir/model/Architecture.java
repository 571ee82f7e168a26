package io.kvasir.model;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * The decoder-only architectures Kvasir runs, keyed by {@code config.json}'s {@code model_type}.
 * All four share the Llama block (pre-norm RMSNorm, RoPE attention with GQA, SwiGLU MLP); they
 * differ only in the flags below.
 */
public enum Architecture {
  /** Llama 2 / 3.x, optionally with llama3 RoPE scaling. */
  LLAMA("llama", "LlamaForCausalLM", false, false, true),
  /** Qwen3 dense: RMSNorm of q and k per head before RoPE; head_dim independent of hidden size. */
  QWEN3("qwen3", "Qwen3ForCausalLM", true, false, true),
  /** Mistral: the Llama block; its sliding window is refused for now. */
  MISTRAL("mistral", "MistralForCausalLM", false, false, false),
  /** Qwen2 / Qwen2.5: biases on the q, k and v projections (not on o). */
  QWEN2("qwen2", "Qwen2ForCausalLM", false, true, false);

  private final String modelType;
  private final String hfClassName;
  private final boolean qkNorm;
  private final boolean qkvBias;
  private final boolean hasAttentionBiasOption;

  Architecture(String modelType, String hfClassName, boolean qkNorm, boolean qkvBias,
      boolean hasAttentionBiasOption) {
    this.modelType = modelType;
    this.hfClassName = hfClassName;
    this.qkNorm = qkNorm;
    this.qkvBias = qkvBias;
    this.hasAttentionBiasOption = hasAttentionBiasOption;
  }

  /** {@code config.json}'s {@code model_type}. */
  public String modelType() {
    return modelType;
  }

  /** The transformers class written to {@code architectures} ({@code "LlamaForCausalLM"}). */
  public String hfClassName() {
    return hfClassName;
  }

  /** RMSNorm of each query and key head before RoPE ({@code q_norm}, {@code k_norm}). */
  public boolean qkNorm() {
    return qkNorm;
  }

  /** The q, k and v projections always carry biases. */
  public boolean qkvBias() {
    return qkvBias;
  }

  /**
   * Whether transformers reads {@code attention_bias} for this architecture (Llama, Qwen3: it
   * puts a bias on q, k, v and o alike). Mistral hard-codes no bias and Qwen2 hard-codes q/k/v
   * bias, so the field means nothing there.
   */
  boolean hasAttentionBiasOption() {
    return hasAttentionBiasOption;
  }

  /** The architecture of a {@code model_type}, or null. */
  public static Architecture fromModelType(String modelType) {
    for (Architecture a : values()) {
      if (a.modelType.equals(modelType)) {
        return a;
      }
    }
    return null;
  }

  /** {@code "llama, qwen3, mistral, qwen2"}: for error messages. */
  public static String supportedModelTypes() {
    return Arrays.stream(values()).map(Architecture::modelType).collect(Collectors.joining(", "));
  }
}
