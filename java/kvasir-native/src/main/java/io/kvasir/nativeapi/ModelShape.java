package io.kvasir.nativeapi;

import java.util.Objects;

/**
 * The native model configuration ({@code kv_model_config}): shapes, normalization, RoPE and the
 * storage dtype. Checkpoint configs ({@code config.json}) map onto it in {@code io.kvasir.model};
 * synthetic presets build it directly.
 *
 * @param ropeScaling {@code "default"} or {@code "llama3"} (the llama3 fields are ignored otherwise)
 * @param weightDtype {@link DType#F32} or {@link DType#BF16}: weights and KV cache storage
 */
public record ModelShape(int vocabSize, int hiddenSize, int intermediateSize, int numLayers, int numQHeads,
    int numKvHeads, int headDim, int maxPositions, float rmsNormEps, float ropeTheta, String ropeScaling,
    float ropeFactor, float ropeLowFreqFactor, float ropeHighFreqFactor, int ropeOriginalMaxPositions, boolean qkNorm,
    boolean qkvBias, boolean tieWordEmbeddings, DType weightDtype) {

  public ModelShape {
    Objects.requireNonNull(ropeScaling, "ropeScaling");
    Objects.requireNonNull(weightDtype, "weightDtype");
    if (!ropeScaling.equals("default") && !ropeScaling.equals("llama3")) {
      throw new IllegalArgumentException("ropeScaling=" + ropeScaling + " must be \"default\" or \"llama3\"");
    }
  }

  /** The same shape stored in another dtype. */
  public ModelShape withWeightDtype(DType dtype) {
    return new ModelShape(vocabSize, hiddenSize, intermediateSize, numLayers, numQHeads, numKvHeads, headDim,
        maxPositions, rmsNormEps, ropeTheta, ropeScaling, ropeFactor, ropeLowFreqFactor, ropeHighFreqFactor,
        ropeOriginalMaxPositions, qkNorm, qkvBias, tieWordEmbeddings, dtype);
  }

  /** The same shape with another context limit. */
  public ModelShape withMaxPositions(int positions) {
    return new ModelShape(vocabSize, hiddenSize, intermediateSize, numLayers, numQHeads, numKvHeads, headDim,
        positions, rmsNormEps, ropeTheta, ropeScaling, ropeFactor, ropeLowFreqFactor, ropeHighFreqFactor,
        ropeOriginalMaxPositions, qkNorm, qkvBias, tieWordEmbeddings, weightDtype);
  }

  /** Bytes of K plus V one token occupies across all layers. */
  public long kvBytesPerToken() {
    return 2L * numLayers * numKvHeads * headDim * weightDtype.byteSize();
  }

  KvasirLibrary.kv_model_config toNative() {
    KvasirLibrary.kv_model_config c = new KvasirLibrary.kv_model_config();
    c.vocab_size(vocabSize).hidden_size(hiddenSize).intermediate_size(intermediateSize).num_layers(numLayers)
        .num_q_heads(numQHeads).num_kv_heads(numKvHeads).head_dim(headDim).max_positions(maxPositions)
        .rms_norm_eps(rmsNormEps).rope_theta(ropeTheta).rope_scaling(ropeScaling.equals("llama3") ? 1 : 0)
        .rope_factor(ropeFactor).rope_low_freq_factor(ropeLowFreqFactor).rope_high_freq_factor(ropeHighFreqFactor)
        .rope_original_max_positions(ropeOriginalMaxPositions).qk_norm(qkNorm ? 1 : 0).qkv_bias(qkvBias ? 1 : 0)
        .tie_word_embeddings(tieWordEmbeddings ? 1 : 0).weight_dtype(weightDtype.code());
    return c;
  }
}
