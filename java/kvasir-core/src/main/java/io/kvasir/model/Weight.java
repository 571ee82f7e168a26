package io.kvasir.model;

import java.util.ArrayList;
import java.util.List;

/**
 * The weight tensors of the Llama-family block, with their Hugging Face names and shapes for a
 * {@link ModelConfig}. Linear weights are {@code [out_features, in_features]} as
 * {@code torch.nn.Linear} stores them. The constants are listed in the order of the C ABI's
 * {@code kv_weight_kind} at the time of writing, but {@link #ordinal()} is not an ABI: map by
 * name.
 */
public enum Weight {
  /** {@code [vocab, hidden]}. */
  EMBED(false, "model.embed_tokens.weight"),
  /** {@code [hidden]}: the final RMSNorm. */
  FINAL_NORM(false, "model.norm.weight"),
  /** {@code [vocab, hidden]}; absent when the embeddings are tied. */
  LM_HEAD(false, "lm_head.weight"),
  /** {@code [hidden]}: RMSNorm before attention. */
  ATTN_NORM(true, "input_layernorm.weight"),
  /** {@code [heads * head_dim, hidden]}. */
  Q(true, "self_attn.q_proj.weight"),
  /** {@code [kv_heads * head_dim, hidden]}. */
  K(true, "self_attn.k_proj.weight"),
  /** {@code [kv_heads * head_dim, hidden]}. */
  V(true, "self_attn.v_proj.weight"),
  /** {@code [hidden, heads * head_dim]}. */
  O(true, "self_attn.o_proj.weight"),
  /** {@code [heads * head_dim]} (Qwen2). */
  Q_BIAS(true, "self_attn.q_proj.bias"),
  /** {@code [kv_heads * head_dim]} (Qwen2). */
  K_BIAS(true, "self_attn.k_proj.bias"),
  /** {@code [kv_heads * head_dim]} (Qwen2). */
  V_BIAS(true, "self_attn.v_proj.bias"),
  /** {@code [head_dim]}: RMSNorm weight shared by all query heads (Qwen3). */
  Q_NORM(true, "self_attn.q_norm.weight"),
  /** {@code [head_dim]}: RMSNorm weight shared by all key heads (Qwen3). */
  K_NORM(true, "self_attn.k_norm.weight"),
  /** {@code [hidden]}: RMSNorm before the MLP. */
  MLP_NORM(true, "post_attention_layernorm.weight"),
  /** {@code [intermediate, hidden]}. */
  GATE(true, "mlp.gate_proj.weight"),
  /** {@code [intermediate, hidden]}. */
  UP(true, "mlp.up_proj.weight"),
  /** {@code [hidden, intermediate]}. */
  DOWN(true, "mlp.down_proj.weight");

  private final boolean perLayer;
  private final String suffix;

  Weight(boolean perLayer, String suffix) {
    this.perLayer = perLayer;
    this.suffix = suffix;
  }

  /** True for tensors that every decoder layer has one of. */
  public boolean perLayer() {
    return perLayer;
  }

  /** The name of a model-level tensor ({@code model.norm.weight}). */
  public String tensorName() {
    if (perLayer) {
      throw new IllegalStateException(this + " is a per-layer weight: name it with tensorName(layer)");
    }
    return suffix;
  }

  /** The name of a per-layer tensor ({@code model.layers.3.self_attn.q_proj.weight}). */
  public String tensorName(int layer) {
    if (!perLayer) {
      throw new IllegalStateException(this + " is a model-level weight: name it with tensorName()");
    }
    if (layer < 0) {
      throw new IllegalArgumentException("layer " + layer);
    }
    return "model.layers." + layer + "." + suffix;
  }

  /** Whether a checkpoint of this config holds the tensor at all. */
  public boolean presentIn(ModelConfig c) {
    switch (this) {
      case LM_HEAD:
        return !c.tieWordEmbeddings();
      case Q_BIAS:
      case K_BIAS:
      case V_BIAS:
        return c.qkvBias();
      case Q_NORM:
      case K_NORM:
        return c.qkNorm();
      default:
        return true;
    }
  }

  /** The shape in a checkpoint of this config. */
  public long[] shape(ModelConfig c) {
    long hidden = c.hiddenSize();
    long inter = c.intermediateSize();
    switch (this) {
      case EMBED:
      case LM_HEAD:
        return new long[] {c.vocabSize(), hidden};
      case FINAL_NORM:
      case ATTN_NORM:
      case MLP_NORM:
        return new long[] {hidden};
      case Q:
        return new long[] {c.qDim(), hidden};
      case K:
      case V:
        return new long[] {c.kvDim(), hidden};
      case O:
        return new long[] {hidden, c.qDim()};
      case Q_BIAS:
        return new long[] {c.qDim()};
      case K_BIAS:
      case V_BIAS:
        return new long[] {c.kvDim()};
      case Q_NORM:
      case K_NORM:
        return new long[] {c.headDim()};
      case GATE:
      case UP:
        return new long[] {inter, hidden};
      case DOWN:
        return new long[] {hidden, inter};
      default:
        throw new AssertionError(this);
    }
  }

  /**
   * Every tensor a checkpoint of this config must hold: the embeddings, each layer's weights in
   * declaration order, the final norm and (untied) the LM head.
   */
  public static List<TensorSpec> expected(ModelConfig c) {
    List<TensorSpec> out = new ArrayList<>();
    out.add(new TensorSpec(EMBED.tensorName(), EMBED.shape(c)));
    for (int layer = 0; layer < c.numHiddenLayers(); layer++) {
      for (Weight w : values()) {
        if (w.perLayer && w.presentIn(c)) {
          out.add(new TensorSpec(w.tensorName(layer), w.shape(c)));
        }
      }
    }
    out.add(new TensorSpec(FINAL_NORM.tensorName(), FINAL_NORM.shape(c)));
    if (LM_HEAD.presentIn(c)) {
      out.add(new TensorSpec(LM_HEAD.tensorName(), LM_HEAD.shape(c)));
    }
    return out;
  }
}
