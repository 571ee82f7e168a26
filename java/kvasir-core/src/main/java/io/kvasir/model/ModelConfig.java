package io.kvasir.model;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * The shape and options of a decoder-only transformer, read from a Hugging Face
 * {@code config.json}. Field names follow transformers' {@code LlamaConfig} /
 * {@code Qwen3Config} / {@code MistralConfig} / {@code Qwen2Config}; absent optional fields take
 * transformers' defaults.
 *
 * <p>Anything that would make Kvasir compute something other than transformers is refused
 * rather than ignored: an unknown {@code model_type}, sliding-window attention, RoPE scaling
 * other than llama3, partial rotary embeddings, activations other than SiLU, biases on o_proj or
 * the MLP. Qwen2 and Qwen3 configs carry a {@code sliding_window} value even when
 * {@code use_sliding_window} is false; transformers then ignores it, and so does Kvasir.
 *
 * @param architecture          from {@code model_type}
 * @param vocabSize             {@code vocab_size}
 * @param hiddenSize            {@code hidden_size}
 * @param intermediateSize      {@code intermediate_size} (the MLP width)
 * @param numHiddenLayers       {@code num_hidden_layers}
 * @param numAttentionHeads     {@code num_attention_heads} (query heads)
 * @param numKeyValueHeads      {@code num_key_value_heads}; defaults to the query heads (MHA)
 * @param headDim               {@code head_dim}; defaults to hidden_size / num_attention_heads.
 *                              Qwen3 sets it independently (q_proj is then not square)
 * @param rmsNormEps            {@code rms_norm_eps}, default 1e-6
 * @param ropeTheta             {@code rope_theta} (or {@code rope_parameters.rope_theta}), default 10000
 * @param ropeScaling           llama3 scaling, or null for plain RoPE
 * @param maxPositionEmbeddings {@code max_position_embeddings}
 * @param tieWordEmbeddings     {@code tie_word_embeddings}: the LM head is the embedding matrix
 * @param torchDtype            {@code torch_dtype} (or {@code dtype}); null when absent. Only a
 *                              hint: each tensor's own dtype is what is read
 */
public record ModelConfig(Architecture architecture, int vocabSize, int hiddenSize, int intermediateSize,
    int numHiddenLayers, int numAttentionHeads, int numKeyValueHeads, int headDim, double rmsNormEps,
    double ropeTheta, RopeScaling ropeScaling, int maxPositionEmbeddings, boolean tieWordEmbeddings,
    TensorDType torchDtype) {

  /** The file name inside a model directory. */
  public static final String FILE_NAME = "config.json";

  /** The only activation the SwiGLU MLP accepts. */
  public static final String HIDDEN_ACT = "silu";

  /** transformers' defaults for fields a config may omit. */
  static final double DEFAULT_RMS_NORM_EPS = 1e-6;
  static final double DEFAULT_ROPE_THETA = 10000.0;

  /**
   * Checks the invariants every consumer relies on. Messages name the config.json fields so that
   * {@link #parse} can prefix the file name and show them as they are.
   */
  public ModelConfig {
    if (architecture == null) {
      throw new CheckpointException("model_type: an architecture is required");
    }
    positive("vocab_size", vocabSize);
    positive("hidden_size", hiddenSize);
    positive("intermediate_size", intermediateSize);
    positive("num_hidden_layers", numHiddenLayers);
    positive("num_attention_heads", numAttentionHeads);
    positive("num_key_value_heads", numKeyValueHeads);
    positive("head_dim", headDim);
    positive("max_position_embeddings", maxPositionEmbeddings);
    if (numAttentionHeads % numKeyValueHeads != 0) {
      throw new CheckpointException("field \"num_attention_heads\": " + numAttentionHeads
          + " query heads cannot be shared evenly by num_key_value_heads = " + numKeyValueHeads
          + " key/value heads (GQA needs num_attention_heads to be a multiple of num_key_value_heads)");
    }
    if (headDim % 2 != 0) {
      throw new CheckpointException("field \"head_dim\": RoPE rotates pairs of channels, so head_dim must be"
          + " even; found " + headDim);
    }
    if (!(rmsNormEps > 0) || Double.isInfinite(rmsNormEps)) {
      throw new CheckpointException("field \"rms_norm_eps\": must be a positive finite number; found " + rmsNormEps);
    }
    if (!(ropeTheta > 0) || Double.isInfinite(ropeTheta)) {
      throw new CheckpointException("field \"rope_theta\": must be a positive finite number; found " + ropeTheta);
    }
    if (ropeScaling != null) {
      checkRopeScaling(ropeScaling);
    }
  }

  private static void positive(String field, int value) {
    if (value <= 0) {
      throw new CheckpointException("field \"" + field + "\": must be a positive integer; found " + value);
    }
  }

  private static void checkRopeScaling(RopeScaling s) {
    if (!(s.factor() > 0) || Double.isInfinite(s.factor())) {
      throw new CheckpointException("field \"rope_scaling.factor\": must be a positive finite number; found "
          + s.factor());
    }
    if (!(s.lowFreqFactor() > 0) || Double.isInfinite(s.lowFreqFactor())) {
      throw new CheckpointException("field \"rope_scaling.low_freq_factor\": must be a positive finite number;"
          + " found " + s.lowFreqFactor());
    }
    // The blend between the two wavelength bounds divides by (high - low).
    if (!(s.highFreqFactor() > s.lowFreqFactor()) || Double.isInfinite(s.highFreqFactor())) {
      throw new CheckpointException("field \"rope_scaling.high_freq_factor\": must be finite and greater than"
          + " low_freq_factor (" + s.lowFreqFactor() + "); found " + s.highFreqFactor());
    }
    if (s.originalMaxPositionEmbeddings() <= 0) {
      throw new CheckpointException("field \"rope_scaling.original_max_position_embeddings\": must be a positive"
          + " integer; found " + s.originalMaxPositionEmbeddings());
    }
  }

  /** {@code config.json}'s {@code model_type}. */
  public String modelType() {
    return architecture.modelType();
  }

  /** Qwen3: RMSNorm of q and k per head (weights {@code q_norm}, {@code k_norm}) before RoPE. */
  public boolean qkNorm() {
    return architecture.qkNorm();
  }

  /** Qwen2: biases on q_proj, k_proj and v_proj. */
  public boolean qkvBias() {
    return architecture.qkvBias();
  }

  /** Output rows of q_proj: {@code num_attention_heads * head_dim}. */
  public int qDim() {
    return numAttentionHeads * headDim;
  }

  /** Output rows of k_proj and v_proj: {@code num_key_value_heads * head_dim}. */
  public int kvDim() {
    return numKeyValueHeads * headDim;
  }

  /** Query heads per key/value head; query head h reads key/value head {@code h / groupSize()}. */
  public int groupSize() {
    return numAttentionHeads / numKeyValueHeads;
  }

  /** Reads {@code dir/config.json}. */
  public static ModelConfig load(Path dir) throws IOException {
    Path file = dir.resolve(FILE_NAME);
    String text;
    try {
      text = Files.readString(file);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(file + ": no such file; a Hugging Face model directory needs a config.json"
          + " beside its *.safetensors", e);
    }
    return parse(text, file.toString());
  }

  /**
   * Parses the text of a {@code config.json}.
   *
   * @param json the file's text
   * @param file the file name that messages show
   * @throws CheckpointException naming the file and field of the first problem
   */
  public static ModelConfig parse(String json, String file) {
    JsonNode root;
    try {
      root = strictMapper().readTree(json);
    } catch (JsonProcessingException e) {
      throw new CheckpointException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new CheckpointException(file + ": expected a JSON object at the top level");
    }
    ConfigFields f = new ConfigFields(file, "", (ObjectNode) root);
    try {
      return fromFields(f);
    } catch (CheckpointException e) {
      if (e.getMessage().startsWith(file + ":")) {
        throw e;
      }
      throw new CheckpointException(file + ": " + e.getMessage(), e);
    }
  }

  private static ModelConfig fromFields(ConfigFields f) {
    String modelType = f.requireString("model_type");
    Architecture arch = Architecture.fromModelType(modelType);
    if (arch == null) {
      throw f.error("model_type", "unsupported model type \"" + modelType + "\"; supported: "
          + Architecture.supportedModelTypes());
    }
    refuseSlidingWindow(f);
    String act = f.optString("hidden_act", HIDDEN_ACT);
    if (!HIDDEN_ACT.equals(act)) {
      throw f.error("hidden_act", "unsupported activation \"" + act + "\"; the SwiGLU MLP supports only \""
          + HIDDEN_ACT + "\"");
    }
    if (f.optBoolean("mlp_bias", false)) {
      throw f.error("mlp_bias", "biases on the MLP projections are not supported");
    }
    // Llama and Qwen3 put attention_bias on q, k, v and o alike; the runtime has q/k/v biases only
    // (Qwen2's). Mistral ignores the field in transformers, but a true there is suspicious enough.
    if (arch != Architecture.QWEN2 && f.optBoolean("attention_bias", false)) {
      throw f.error("attention_bias", "true is not supported for model_type \"" + modelType
          + "\" (it adds an o_proj bias); only Qwen2's q/k/v biases are");
    }
    int hidden = f.requireInt("hidden_size");
    int heads = f.requireInt("num_attention_heads");
    int kvHeads = f.optInt("num_key_value_heads", heads);
    int headDim;
    if (f.has("head_dim")) {
      headDim = f.requireInt("head_dim");
    } else {
      if (heads > 0 && hidden % heads != 0) {
        throw f.error("head_dim", "absent, and hidden_size " + hidden + " is not a multiple of"
            + " num_attention_heads " + heads + " (the default head_dim is hidden_size / num_attention_heads)");
      }
      headDim = heads > 0 ? hidden / heads : 0;
    }
    Rope rope = readRope(f);
    TensorDType dtype = readDtype(f);
    return new ModelConfig(arch, f.requireInt("vocab_size"), hidden, f.requireInt("intermediate_size"),
        f.requireInt("num_hidden_layers"), heads, kvHeads, headDim,
        f.optDouble("rms_norm_eps", DEFAULT_RMS_NORM_EPS), rope.theta, rope.scaling,
        f.requireInt("max_position_embeddings"), f.optBoolean("tie_word_embeddings", false), dtype);
  }

  /**
   * Sliding-window attention is not implemented yet. transformers' Qwen2/Qwen3 use the window
   * only when {@code use_sliding_window} is true (their configs often carry a window value with
   * the flag false); Llama/Mistral have no flag and use any non-null {@code sliding_window}.
   * transformers 5 may also describe it per layer in {@code layer_types}.
   */
  private static void refuseSlidingWindow(ConfigFields f) {
    JsonNode window = f.raw("sliding_window");
    String found = window == null ? "null" : ConfigFields.describe(window);
    if (f.has("use_sliding_window")) {
      if (f.optBoolean("use_sliding_window", false)) {
        throw f.error("use_sliding_window", "sliding-window attention is not supported yet; found"
            + " use_sliding_window = true with sliding_window = " + found);
      }
    } else if (window != null) {
      throw f.error("sliding_window", "sliding-window attention is not supported yet; found sliding_window = "
          + found + " (only null is accepted)");
    }
    JsonNode layerTypes = f.raw("layer_types");
    if (layerTypes != null) {
      if (!layerTypes.isArray()) {
        throw f.error("layer_types", "expected an array, found " + ConfigFields.describe(layerTypes));
      }
      for (int i = 0; i < layerTypes.size(); i++) {
        String type = layerTypes.get(i).asText();
        if (!"full_attention".equals(type)) {
          throw f.error("layer_types", "layer " + i + " is \"" + type + "\"; only \"full_attention\" layers are"
              + " supported (sliding-window attention is not supported yet)");
        }
      }
    }
  }

  private record Rope(double theta, RopeScaling scaling) {}

  /**
   * transformers 4 writes {@code rope_theta} at the top level and scaling in {@code rope_scaling}
   * (type under {@code rope_type}, or {@code type} in older files); transformers 5 writes both
   * into {@code rope_parameters}. Either is read; disagreeing thetas are refused.
   */
  private static Rope readRope(ConfigFields f) {
    ConfigFields params = f.object("rope_parameters");
    String paramsField = "rope_parameters";
    if (params == null) {
      params = f.object("rope_scaling");
      paramsField = "rope_scaling";
    }
    double theta = f.optDouble("rope_theta", Double.NaN);
    if (params != null && params.has("rope_theta")) {
      double inner = params.optDouble("rope_theta", DEFAULT_ROPE_THETA);
      if (!Double.isNaN(theta) && theta != inner) {
        throw f.error("rope_theta", theta + " disagrees with " + paramsField + ".rope_theta = " + inner);
      }
      theta = inner;
    }
    if (Double.isNaN(theta)) {
      theta = DEFAULT_ROPE_THETA;
    }
    refusePartialRotary(f);
    if (params == null) {
      return new Rope(theta, null);
    }
    refusePartialRotary(params);
    String typeField = params.has("rope_type") ? "rope_type" : "type";
    String type = params.optString(typeField, "default");
    if ("default".equals(type)) {
      return new Rope(theta, null);
    }
    if (!RopeScaling.LLAMA3.equals(type)) {
      throw params.error(typeField, "unsupported RoPE scaling type \"" + type + "\"; supported: default (no"
          + " scaling) and " + RopeScaling.LLAMA3);
    }
    RopeScaling scaling = new RopeScaling(params.requireDouble("factor"), params.requireDouble("low_freq_factor"),
        params.requireDouble("high_freq_factor"), params.requireInt("original_max_position_embeddings"));
    return new Rope(theta, scaling);
  }

  private static void refusePartialRotary(ConfigFields f) {
    double partial = f.optDouble("partial_rotary_factor", 1.0);
    if (partial != 1.0) {
      throw f.error("partial_rotary_factor", "only 1.0 (RoPE over the whole head) is supported; found " + partial);
    }
  }

  private static TensorDType readDtype(ConfigFields f) {
    String field = f.has("torch_dtype") ? "torch_dtype" : "dtype";
    String name = f.optString(field, null);
    if (name == null) {
      return null;
    }
    TensorDType dtype = TensorDType.fromTorch(name);
    if (dtype == null) {
      throw f.error(field, "unsupported dtype \"" + name + "\"; supported: bfloat16, float16, float32");
    }
    return dtype;
  }

  /**
   * A mapper that refuses duplicate keys (a file with two values for one field is ambiguous) and
   * anything after the top-level value.
   */
  static ObjectMapper strictMapper() {
    return JsonMapper.builder().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
        .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).build();
  }
}
