package io.kvasir.model.reference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The hyperparameters the reference forward needs, read from {@code config.json} by this
 * package itself rather than through {@code io.kvasir.model.ModelConfig}, so that a mistake in
 * the production parser (a wrong default, a misread rope field) shows up as a disagreement
 * instead of being shared. Defaults are transformers' ({@code LlamaConfig} and siblings):
 * num_key_value_heads = num_attention_heads, head_dim = hidden_size / num_attention_heads,
 * rms_norm_eps 1e-6, rope_theta 10000, tie_word_embeddings false.
 */
record ReferenceConfig(String modelType, int vocabSize, int hiddenSize, int intermediateSize, int numLayers,
    int numHeads, int numKvHeads, int headDim, double rmsNormEps, double ropeTheta, boolean llama3,
    double ropeFactor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions,
    boolean tieWordEmbeddings) {

  /** Qwen3 normalizes each q and k head before RoPE. */
  boolean qkNorm() {
    return modelType.equals("qwen3");
  }

  /** Qwen2 has biases on q_proj, k_proj and v_proj. */
  boolean qkvBias() {
    return modelType.equals("qwen2");
  }

  static ReferenceConfig read(Path dir) throws IOException {
    JsonNode c = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
    String type = c.get("model_type").asText();
    if (!type.equals("llama") && !type.equals("qwen3") && !type.equals("mistral") && !type.equals("qwen2")) {
      throw new IllegalArgumentException("the reference does not model " + type);
    }
    int hidden = c.get("hidden_size").asInt();
    int heads = c.get("num_attention_heads").asInt();
    int kvHeads = present(c, "num_key_value_heads") ? c.get("num_key_value_heads").asInt() : heads;
    int headDim = present(c, "head_dim") ? c.get("head_dim").asInt() : hidden / heads;
    // transformers 4 keeps RoPE settings in rope_theta + rope_scaling, transformers 5 in rope_parameters.
    JsonNode rope = present(c, "rope_parameters") ? c.get("rope_parameters") : c.get("rope_scaling");
    double theta = present(c, "rope_theta") ? c.get("rope_theta").asDouble()
        : rope != null && present(rope, "rope_theta") ? rope.get("rope_theta").asDouble() : 10000.0;
    boolean llama3 = false;
    double factor = 1;
    double low = 1;
    double high = 1;
    int original = 0;
    if (rope != null && !rope.isNull()) {
      String ropeType = present(rope, "rope_type") ? rope.get("rope_type").asText()
          : present(rope, "type") ? rope.get("type").asText() : "default";
      if (ropeType.equals("llama3")) {
        llama3 = true;
        factor = rope.get("factor").asDouble();
        low = rope.get("low_freq_factor").asDouble();
        high = rope.get("high_freq_factor").asDouble();
        original = rope.get("original_max_position_embeddings").asInt();
      } else if (!ropeType.equals("default")) {
        throw new IllegalArgumentException("the reference does not model rope type " + ropeType);
      }
    }
    return new ReferenceConfig(type, c.get("vocab_size").asInt(), hidden, c.get("intermediate_size").asInt(),
        c.get("num_hidden_layers").asInt(), heads, kvHeads, headDim,
        present(c, "rms_norm_eps") ? c.get("rms_norm_eps").asDouble() : 1e-6, theta, llama3, factor, low, high,
        original, present(c, "tie_word_embeddings") && c.get("tie_word_embeddings").asBoolean());
  }

  private static boolean present(JsonNode node, String field) {
    return node.has(field) && !node.get(field).isNull();
  }
}
