package io.kvasir.model.reference;

import io.kvasir.model.Checkpoint;
import io.kvasir.model.TensorView;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * A plain, double-precision forward pass of the Llama-family decoder (Llama, Qwen3, Mistral,
 * Qwen2), the oracle that the engine's logits are held to. It shares no code with the engine or
 * with {@code io.kvasir.model} beyond opening the checkpoint ({@link Checkpoint} maps the files
 * and hands out raw little-endian bytes): it reads {@code config.json} itself
 * ({@link ReferenceConfig}), decodes bf16/f16/f32 itself, and computes every step directly from
 * the definitions below, with no caching, batching or reordering. It is slow (O(T^2) per call)
 * and meant for tiny models.
 *
 * <p>Each step mirrors transformers' {@code modeling_llama.py} / {@code modeling_qwen3.py} /
 * {@code modeling_qwen2.py} / {@code modeling_mistral.py} (all four share the block):
 * <ol>
 *   <li>Embedding: row {@code token} of {@code model.embed_tokens.weight}.</li>
 *   <li>Each layer ({@code LlamaDecoderLayer}): {@code x += o_proj(attention(input_layernorm(x)))},
 *       then {@code x += down_proj(silu(gate_proj(h)) * up_proj(h))} with
 *       {@code h = post_attention_layernorm(x)} ({@code LlamaMLP}; silu(z) = z / (1 + e^-z)).</li>
 *   <li>RMSNorm ({@code LlamaRMSNorm}): {@code y = x / sqrt(mean(x^2) + eps) * weight}, the
 *       statistics over the last dimension. transformers computes it in fp32 and casts back to
 *       the activation dtype before multiplying by the weight; here it is all double.</li>
 *   <li>Attention ({@code LlamaAttention}): {@code q = q_proj(h)}, {@code k = k_proj(h)},
 *       {@code v = v_proj(h)} (plus biases for Qwen2, whose projections have {@code bias=True}),
 *       split into heads of head_dim; Qwen3 then applies RMSNorm with {@code q_norm} /
 *       {@code k_norm} (weights of size head_dim, shared across heads) to each head
 *       ({@code Qwen3Attention}); then RoPE on q and k at each token's position ({@link Rope}).
 *       Scores {@code q . k * head_dim^-0.5}, causal mask (a query sees keys at positions up to
 *       its own), softmax over keys, weighted sum of v. GQA ({@code repeat_kv}): query head
 *       {@code h} reads key/value head {@code h / (heads / kv_heads)}. Heads are concatenated
 *       in order before {@code o_proj}.</li>
 *   <li>Final {@code model.norm}, then the LM head: {@code lm_head.weight}, or the embedding
 *       matrix when {@code tie_word_embeddings} is true.</li>
 * </ol>
 * Linear layers compute {@code y = W x (+ b)} with {@code W [out][in]} as stored.
 */
public final class ReferenceModel {
  private final ReferenceConfig config;
  private final Map<String, double[]> weights = new HashMap<>();
  private final double[] invFreq;

  private ReferenceModel(ReferenceConfig config, Checkpoint checkpoint) {
    this.config = config;
    this.invFreq = Rope.invFreq(config);
    for (String name : checkpoint.names()) {
      weights.put(name, decode(checkpoint.tensor(name)));
    }
  }

  /** Loads a model directory; every tensor is decoded to double on the heap (tiny models only). */
  public static ReferenceModel load(Path dir) throws IOException {
    ReferenceConfig config = ReferenceConfig.read(dir);
    try (Checkpoint checkpoint = Checkpoint.open(dir)) {
      return new ReferenceModel(config, checkpoint);
    }
  }

  /** Vocabulary size: the width of each logits row. */
  public int vocabSize() {
    return config.vocabSize();
  }

  /** The inverse RoPE frequencies in use (length head_dim / 2). */
  public double[] invFreq() {
    return invFreq.clone();
  }

  /** Logits {@code [T][vocab]} for every position of {@code tokens}, at positions 0..T-1. */
  public double[][] logits(int[] tokens) {
    return logits(tokens, 0);
  }

  /**
   * Logits {@code [T][vocab]} with token {@code t} at position {@code firstPosition + t}.
   * RoPE makes attention depend on position differences only, so the result must not depend on
   * {@code firstPosition} (up to rounding).
   */
  public double[][] logits(int[] tokens, long firstPosition) {
    ReferenceConfig c = config;
    int n = tokens.length;
    int hidden = c.hiddenSize();
    double[] embed = weight("model.embed_tokens.weight");
    double[][] x = new double[n][];
    for (int t = 0; t < n; t++) {
      if (tokens[t] < 0 || tokens[t] >= c.vocabSize()) {
        throw new IllegalArgumentException("token " + tokens[t] + " outside the vocabulary");
      }
      x[t] = new double[hidden];
      System.arraycopy(embed, tokens[t] * hidden, x[t], 0, hidden);
    }
    for (int layer = 0; layer < c.numLayers(); layer++) {
      String p = "model.layers." + layer + ".";
      double[][] attn = attention(p, x, firstPosition);
      for (int t = 0; t < n; t++) {
        add(x[t], attn[t]);
      }
      for (int t = 0; t < n; t++) {
        add(x[t], mlp(p, rmsNorm(x[t], 0, hidden, weight(p + "post_attention_layernorm.weight"))));
      }
    }
    double[] head = c.tieWordEmbeddings() ? embed : weight("lm_head.weight");
    double[][] logits = new double[n][];
    for (int t = 0; t < n; t++) {
      double[] h = rmsNorm(x[t], 0, hidden, weight("model.norm.weight"));
      logits[t] = matVec(head, c.vocabSize(), hidden, h);
    }
    return logits;
  }

  /** Self-attention of one layer for all positions: {@code [T][hidden]}, after o_proj. */
  private double[][] attention(String p, double[][] x, long firstPosition) {
    ReferenceConfig c = config;
    int n = x.length;
    int hidden = c.hiddenSize();
    int d = c.headDim();
    int heads = c.numHeads();
    int kvHeads = c.numKvHeads();
    int group = heads / kvHeads;
    double[][] q = new double[n][];
    double[][] k = new double[n][];
    double[][] v = new double[n][];
    for (int t = 0; t < n; t++) {
      double[] h = rmsNorm(x[t], 0, hidden, weight(p + "input_layernorm.weight"));
      q[t] = matVec(weight(p + "self_attn.q_proj.weight"), heads * d, hidden, h);
      k[t] = matVec(weight(p + "self_attn.k_proj.weight"), kvHeads * d, hidden, h);
      v[t] = matVec(weight(p + "self_attn.v_proj.weight"), kvHeads * d, hidden, h);
      if (c.qkvBias()) {
        add(q[t], weight(p + "self_attn.q_proj.bias"));
        add(k[t], weight(p + "self_attn.k_proj.bias"));
        add(v[t], weight(p + "self_attn.v_proj.bias"));
      }
      if (c.qkNorm()) {
        for (int head = 0; head < heads; head++) {
          System.arraycopy(rmsNorm(q[t], head * d, d, weight(p + "self_attn.q_norm.weight")), 0, q[t], head * d, d);
        }
        for (int head = 0; head < kvHeads; head++) {
          System.arraycopy(rmsNorm(k[t], head * d, d, weight(p + "self_attn.k_norm.weight")), 0, k[t], head * d, d);
        }
      }
      for (int head = 0; head < heads; head++) {
        Rope.rotate(q[t], head * d, d, firstPosition + t, invFreq);
      }
      for (int head = 0; head < kvHeads; head++) {
        Rope.rotate(k[t], head * d, d, firstPosition + t, invFreq);
      }
    }
    double scale = 1.0 / Math.sqrt(d);
    double[][] out = new double[n][];
    for (int t = 0; t < n; t++) {
      double[] concat = new double[heads * d];
      for (int head = 0; head < heads; head++) {
        int kvHead = head / group;
        double[] scores = new double[t + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int s = 0; s <= t; s++) {
          double dot = 0;
          for (int j = 0; j < d; j++) {
            dot += q[t][head * d + j] * k[s][kvHead * d + j];
          }
          scores[s] = dot * scale;
          max = Math.max(max, scores[s]);
        }
        double sum = 0;
        for (int s = 0; s <= t; s++) {
          scores[s] = Math.exp(scores[s] - max);
          sum += scores[s];
        }
        for (int s = 0; s <= t; s++) {
          double w = scores[s] / sum;
          for (int j = 0; j < d; j++) {
            concat[head * d + j] += w * v[s][kvHead * d + j];
          }
        }
      }
      out[t] = matVec(weight(p + "self_attn.o_proj.weight"), hidden, heads * d, concat);
    }
    return out;
  }

  private double[] mlp(String p, double[] h) {
    ReferenceConfig c = config;
    int hidden = c.hiddenSize();
    int inter = c.intermediateSize();
    double[] gate = matVec(weight(p + "mlp.gate_proj.weight"), inter, hidden, h);
    double[] up = matVec(weight(p + "mlp.up_proj.weight"), inter, hidden, h);
    double[] act = new double[inter];
    for (int i = 0; i < inter; i++) {
      act[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
    }
    return matVec(weight(p + "mlp.down_proj.weight"), hidden, inter, act);
  }

  /** RMSNorm of {@code x[offset, offset + n)}: a new array of n values. */
  private double[] rmsNorm(double[] x, int offset, int n, double[] weight) {
    double sumSquares = 0;
    for (int i = 0; i < n; i++) {
      sumSquares += x[offset + i] * x[offset + i];
    }
    double inv = 1.0 / Math.sqrt(sumSquares / n + config.rmsNormEps());
    double[] y = new double[n];
    for (int i = 0; i < n; i++) {
      y[i] = x[offset + i] * inv * weight[i];
    }
    return y;
  }

  private static double[] matVec(double[] w, int rows, int cols, double[] x) {
    if (w.length != (long) rows * cols || x.length != cols) {
      throw new IllegalStateException("matrix " + w.length + " vs " + rows + "x" + cols + " and vector " + x.length);
    }
    double[] y = new double[rows];
    for (int r = 0; r < rows; r++) {
      double acc = 0;
      int base = r * cols;
      for (int i = 0; i < cols; i++) {
        acc += w[base + i] * x[i];
      }
      y[r] = acc;
    }
    return y;
  }

  private static void add(double[] acc, double[] x) {
    for (int i = 0; i < acc.length; i++) {
      acc[i] += x[i];
    }
  }

  private double[] weight(String name) {
    double[] w = weights.get(name);
    if (w == null) {
      throw new IllegalStateException("the checkpoint has no " + name);
    }
    return w;
  }

  /** A greedy continuation and, per step, the gap between the best and second-best logit. */
  public record Continuation(int[] tokens, double[] top2Margins) {}

  /**
   * Greedy decoding: {@code newTokens} times, append the argmax of the last position's logits
   * (the lowest id on ties). Recomputes the whole sequence each step: nothing is cached, so the
   * continuation is an independent check of an engine's incremental decoding.
   */
  public Continuation greedy(int[] prompt, int newTokens) {
    int[] seq = java.util.Arrays.copyOf(prompt, prompt.length + newTokens);
    double[] margins = new double[newTokens];
    for (int step = 0; step < newTokens; step++) {
      int len = prompt.length + step;
      double[][] all = logits(java.util.Arrays.copyOf(seq, len));
      double[] last = all[len - 1];
      int best = 0;
      for (int i = 1; i < last.length; i++) {
        if (last[i] > last[best]) {
          best = i;
        }
      }
      double second = Double.NEGATIVE_INFINITY;
      for (int i = 0; i < last.length; i++) {
        if (i != best) {
          second = Math.max(second, last[i]);
        }
      }
      seq[len] = best;
      margins[step] = last[best] - second;
    }
    return new Continuation(java.util.Arrays.copyOfRange(seq, prompt.length, seq.length), margins);
  }

  /** A tensor's values as doubles, decoded here from its little-endian bytes. */
  static double[] decode(TensorView t) {
    ByteBuffer b = t.data();
    long count = t.elementCount();
    double[] out = new double[Math.toIntExact(count)];
    for (int i = 0; i < out.length; i++) {
      switch (t.dtype()) {
        case F32:
          out[i] = b.getFloat(i * 4);
          break;
        case BF16:
          out[i] = Float.intBitsToFloat((b.getShort(i * 2) & 0xFFFF) << 16);
          break;
        case F16:
          out[i] = halfToDouble(b.getShort(i * 2));
          break;
        default:
          throw new IllegalArgumentException(t.dtype().toString());
      }
    }
    return out;
  }

  /** binary16: (-1)^s 2^(e-15) (1 + f/1024), subnormal 2^-14 (f/1024), e = 31 for inf/NaN. */
  public static double halfToDouble(short bits) {
    int h = bits & 0xFFFF;
    double sign = (h & 0x8000) != 0 ? -1 : 1;
    int e = (h >>> 10) & 0x1F;
    int f = h & 0x3FF;
    if (e == 0x1F) {
      return f == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
    }
    if (e == 0) {
      return sign * Math.scalb(f / 1024.0, -14);
    }
    return sign * Math.scalb(1 + f / 1024.0, e - 15);
  }
}
