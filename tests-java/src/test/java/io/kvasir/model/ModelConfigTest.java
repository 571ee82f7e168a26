package io.kvasir.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** config.json as the real model repositories ship it, and every refusal. */
class ModelConfigTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String FILE = "/models/x/config.json";

  /** Meta's Llama-3.2-1B config.json (transformers 4.45). */
  static final String LLAMA_32_1B = "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,"
      + "\"attention_dropout\":0.0,\"bos_token_id\":128000,\"eos_token_id\":128001,\"head_dim\":64,"
      + "\"hidden_act\":\"silu\",\"hidden_size\":2048,\"initializer_range\":0.02,\"intermediate_size\":8192,"
      + "\"max_position_embeddings\":131072,\"mlp_bias\":false,\"model_type\":\"llama\",\"num_attention_heads\":32,"
      + "\"num_hidden_layers\":16,\"num_key_value_heads\":8,\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,"
      + "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
      + "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},\"rope_theta\":500000.0,"
      + "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.45.0.dev0\","
      + "\"use_cache\":true,\"vocab_size\":128256}";

  /** Qwen3-0.6B: head_dim 128 with hidden 1024 and 16 heads; sliding window off. */
  static final String QWEN3_06B = "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,"
      + "\"attention_dropout\":0.0,\"bos_token_id\":151643,\"eos_token_id\":151645,\"head_dim\":128,"
      + "\"hidden_act\":\"silu\",\"hidden_size\":1024,\"initializer_range\":0.02,\"intermediate_size\":3072,"
      + "\"max_position_embeddings\":40960,\"max_window_layers\":28,\"model_type\":\"qwen3\","
      + "\"num_attention_heads\":16,\"num_hidden_layers\":28,\"num_key_value_heads\":8,\"rms_norm_eps\":1e-06,"
      + "\"rope_scaling\":null,\"rope_theta\":1000000,\"sliding_window\":null,\"tie_word_embeddings\":true,"
      + "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.51.0\",\"use_cache\":true,"
      + "\"use_sliding_window\":false,\"vocab_size\":151936}";

  /** Mistral-7B-v0.3: sliding_window null, no head_dim (defaults to 4096 / 32). */
  static final String MISTRAL_7B_V03 = "{\"architectures\":[\"MistralForCausalLM\"],\"attention_dropout\":0.0,"
      + "\"bos_token_id\":1,\"eos_token_id\":2,\"hidden_act\":\"silu\",\"hidden_size\":4096,"
      + "\"initializer_range\":0.02,\"intermediate_size\":14336,\"max_position_embeddings\":32768,"
      + "\"model_type\":\"mistral\",\"num_attention_heads\":32,\"num_hidden_layers\":32,\"num_key_value_heads\":8,"
      + "\"rms_norm_eps\":1e-05,\"rope_theta\":1000000.0,\"sliding_window\":null,\"tie_word_embeddings\":false,"
      + "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.42.0.dev0\",\"use_cache\":true,"
      + "\"vocab_size\":32768}";

  /** Qwen2.5-0.5B: a sliding_window value with use_sliding_window false (transformers ignores it). */
  static final String QWEN25_05B = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"attention_dropout\":0.0,"
      + "\"bos_token_id\":151643,\"eos_token_id\":151643,\"hidden_act\":\"silu\",\"hidden_size\":896,"
      + "\"initializer_range\":0.02,\"intermediate_size\":4864,\"max_position_embeddings\":32768,"
      + "\"max_window_layers\":24,\"model_type\":\"qwen2\",\"num_attention_heads\":14,\"num_hidden_layers\":24,"
      + "\"num_key_value_heads\":2,\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,\"sliding_window\":32768,"
      + "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.40.1\","
      + "\"use_cache\":true,\"use_sliding_window\":false,\"vocab_size\":151936}";

  private static ModelConfig parse(String json) {
    return ModelConfig.parse(json, FILE);
  }

  private static String edit(String json, Consumer<ObjectNode> change) throws Exception {
    ObjectNode node = (ObjectNode) JSON.readTree(json);
    change.accept(node);
    return JSON.writeValueAsString(node);
  }

  /** Parsing must fail with a message naming the file, the field and every fragment given. */
  private static CheckpointException refused(String json, String field, String... fragments) {
    CheckpointException e = assertThrows(CheckpointException.class, () -> parse(json));
    String m = e.getMessage();
    assertTrue(m.startsWith(FILE + ":"), "names the file: " + m);
    assertTrue(m.contains("\"" + field + "\""), "names the field " + field + ": " + m);
    for (String f : fragments) {
      assertTrue(m.contains(f), "mentions '" + f + "': " + m);
    }
    return e;
  }

  @Test
  void llama32WithLlama3RopeScaling() {
    ModelConfig c = parse(LLAMA_32_1B);
    assertEquals(Architecture.LLAMA, c.architecture());
    assertEquals("llama", c.modelType());
    assertEquals(128256, c.vocabSize());
    assertEquals(2048, c.hiddenSize());
    assertEquals(8192, c.intermediateSize());
    assertEquals(16, c.numHiddenLayers());
    assertEquals(32, c.numAttentionHeads());
    assertEquals(8, c.numKeyValueHeads());
    assertEquals(64, c.headDim());
    assertEquals(4, c.groupSize());
    assertEquals(1e-5, c.rmsNormEps());
    assertEquals(500000.0, c.ropeTheta());
    assertEquals(new RopeScaling(32.0, 1.0, 4.0, 8192), c.ropeScaling());
    assertEquals(131072, c.maxPositionEmbeddings());
    assertTrue(c.tieWordEmbeddings());
    assertEquals(TensorDType.BF16, c.torchDtype());
    assertFalse(c.qkNorm());
    assertFalse(c.qkvBias());
  }

  @Test
  void qwen3HasQkNormAndIndependentHeadDim() {
    ModelConfig c = parse(QWEN3_06B);
    assertEquals(Architecture.QWEN3, c.architecture());
    assertEquals(128, c.headDim());
    assertEquals(16 * 128, c.qDim(), "q_proj has 2048 rows for hidden 1024");
    assertEquals(8 * 128, c.kvDim());
    assertTrue(c.qkNorm());
    assertFalse(c.qkvBias());
    assertNull(c.ropeScaling());
    assertEquals(1e6, c.ropeTheta());
    assertEquals(40960, c.maxPositionEmbeddings());
  }

  @Test
  void mistralDefaultsHeadDimFromHiddenSize() {
    ModelConfig c = parse(MISTRAL_7B_V03);
    assertEquals(Architecture.MISTRAL, c.architecture());
    assertEquals(128, c.headDim());
    assertFalse(c.tieWordEmbeddings());
    assertFalse(c.qkNorm());
    assertFalse(c.qkvBias());
  }

  @Test
  void qwen2HasQkvBiasAndIgnoresAnUnusedSlidingWindow() {
    ModelConfig c = parse(QWEN25_05B);
    assertEquals(Architecture.QWEN2, c.architecture());
    assertTrue(c.qkvBias());
    assertFalse(c.qkNorm());
    assertEquals(64, c.headDim());
    assertEquals(7, c.groupSize());
  }

  @Test
  void transformersDefaultsFillAbsentOptionalFields() throws Exception {
    String minimal = "{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":128,"
        + "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"max_position_embeddings\":512}";
    ModelConfig c = parse(minimal);
    assertEquals(4, c.numKeyValueHeads(), "kv heads default to the query heads");
    assertEquals(16, c.headDim(), "head_dim defaults to hidden / heads");
    assertEquals(1e-6, c.rmsNormEps());
    assertEquals(10000.0, c.ropeTheta());
    assertNull(c.ropeScaling());
    assertFalse(c.tieWordEmbeddings());
    assertNull(c.torchDtype());
    // JSON null is "absent" too, as transformers treats it.
    ModelConfig n = parse(edit(minimal, o -> o.putNull("num_key_value_heads").putNull("rope_scaling")));
    assertEquals(4, n.numKeyValueHeads());
    assertNull(n.ropeScaling());
  }

  @Test
  void acceptsOlderAndNewerRopeSpellings() throws Exception {
    // "type" instead of "rope_type" (configs edited for transformers < 4.43).
    ModelConfig old = parse(edit(LLAMA_32_1B, o -> {
      ObjectNode s = (ObjectNode) o.get("rope_scaling");
      s.remove("rope_type");
      s.put("type", "llama3");
    }));
    assertEquals(32.0, old.ropeScaling().factor());
    // transformers 5: rope_parameters holds theta and scaling; dtype replaces torch_dtype.
    ModelConfig v5 = parse(edit(LLAMA_32_1B, o -> {
      ObjectNode params = (ObjectNode) o.remove("rope_scaling");
      params.put("rope_theta", o.remove("rope_theta").doubleValue());
      o.set("rope_parameters", params);
      o.put("dtype", o.remove("torch_dtype").textValue());
    }));
    assertEquals(parse(LLAMA_32_1B), v5);
    ModelConfig v5Default = parse(edit(QWEN3_06B, o -> {
      o.remove("rope_theta");
      o.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 5e6);
    }));
    assertNull(v5Default.ropeScaling());
    assertEquals(5e6, v5Default.ropeTheta());
    // Explicit default type in rope_scaling.
    assertNull(parse(edit(QWEN3_06B, o -> o.putObject("rope_scaling").put("rope_type", "default"))).ropeScaling());
  }

  @Test
  void refusesUnsupportedModelTypeListingSupported() throws Exception {
    refused(edit(LLAMA_32_1B, o -> o.put("model_type", "gemma2")), "model_type", "gemma2", "llama", "qwen3",
        "mistral", "qwen2");
  }

  @Test
  void refusesSlidingWindow() throws Exception {
    // Mistral 7B v0.1 ships sliding_window 4096.
    refused(edit(MISTRAL_7B_V03, o -> o.put("sliding_window", 4096)), "sliding_window", "not supported yet",
        "4096");
    refused(edit(QWEN25_05B, o -> o.put("use_sliding_window", true)), "use_sliding_window", "not supported yet",
        "32768");
    refused(edit(QWEN3_06B, o -> o.putArray("layer_types").add("full_attention").add("sliding_attention")),
        "layer_types", "layer 1", "sliding_attention");
    // Qwen2's window with the flag off is accepted (checked above); so is Llama with an explicit null.
    parse(edit(LLAMA_32_1B, o -> o.putNull("sliding_window")));
  }

  @Test
  void refusesUnsupportedRopeScaling() throws Exception {
    refused(edit(LLAMA_32_1B, o -> ((ObjectNode) o.get("rope_scaling")).put("rope_type", "yarn")),
        "rope_scaling.rope_type", "yarn", "llama3");
    refused(edit(LLAMA_32_1B, o -> o.putObject("rope_scaling").put("type", "linear").put("factor", 2.0)),
        "rope_scaling.type", "linear");
    refused(edit(LLAMA_32_1B, o -> ((ObjectNode) o.get("rope_scaling")).remove("low_freq_factor")),
        "rope_scaling.low_freq_factor", "missing");
    refused(edit(LLAMA_32_1B, o -> ((ObjectNode) o.get("rope_scaling")).put("high_freq_factor", 1.0)),
        "rope_scaling.high_freq_factor", "greater than");
    refused(edit(LLAMA_32_1B, o -> o.put("rope_scaling", "llama3")), "rope_scaling", "JSON object");
    refused(edit(LLAMA_32_1B, o -> o.put("partial_rotary_factor", 0.5)), "partial_rotary_factor", "0.5");
    refused(edit(LLAMA_32_1B, o -> {
      o.putObject("rope_parameters").put("rope_theta", 10000.0);
    }), "rope_theta", "500000", "10000");
  }

  @Test
  void refusesUnsupportedActivationAndBiases() throws Exception {
    refused(edit(MISTRAL_7B_V03, o -> o.put("hidden_act", "gelu_pytorch_tanh")), "hidden_act",
        "gelu_pytorch_tanh", "silu");
    refused(edit(LLAMA_32_1B, o -> o.put("attention_bias", true)), "attention_bias", "o_proj");
    refused(edit(QWEN3_06B, o -> o.put("attention_bias", true)), "attention_bias");
    refused(edit(LLAMA_32_1B, o -> o.put("mlp_bias", true)), "mlp_bias");
  }

  @Test
  void refusesInconsistentShapes() throws Exception {
    refused(edit(LLAMA_32_1B, o -> o.put("num_key_value_heads", 5)), "num_attention_heads", "32", "5",
        "multiple");
    refused(edit(MISTRAL_7B_V03, o -> o.put("num_attention_heads", 30)), "head_dim", "4096", "30");
    refused(edit(LLAMA_32_1B, o -> o.put("head_dim", 63)), "head_dim", "even", "63");
    refused(edit(LLAMA_32_1B, o -> o.put("hidden_size", 0)), "hidden_size", "positive", "0");
    refused(edit(LLAMA_32_1B, o -> o.put("num_hidden_layers", -2)), "num_hidden_layers", "-2");
    refused(edit(LLAMA_32_1B, o -> o.put("rms_norm_eps", 0.0)), "rms_norm_eps", "positive");
    refused(edit(LLAMA_32_1B, o -> o.put("rope_theta", -1.0)), "rope_theta", "positive");
  }

  @Test
  void refusesMissingOrMistypedFields() throws Exception {
    for (String field : new String[] {"model_type", "vocab_size", "hidden_size", "intermediate_size",
        "num_hidden_layers", "num_attention_heads", "max_position_embeddings"}) {
      refused(edit(QWEN3_06B, o -> o.remove(field)), field, "missing");
    }
    refused(edit(QWEN3_06B, o -> o.put("hidden_size", "1024")), "hidden_size", "integer", "1024");
    refused(edit(QWEN3_06B, o -> o.put("hidden_size", 1024.5)), "hidden_size", "integer", "1024.5");
    refused(edit(QWEN3_06B, o -> o.put("tie_word_embeddings", "yes")), "tie_word_embeddings", "true or false");
    refused(edit(QWEN3_06B, o -> o.put("torch_dtype", "int8")), "torch_dtype", "int8", "bfloat16");
    // A float that is an integer is fine (some exporters write 1024.0).
    assertEquals(1024, parse(edit(QWEN3_06B, o -> o.put("hidden_size", 1024.0))).hiddenSize());
  }

  @Test
  void refusesMalformedJsonNamingTheFile() {
    for (String bad : new String[] {"{\"model_type\": ", "[1, 2]", "{\"a\":1,\"a\":2}", "{} {}"}) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> parse(bad), bad);
      assertTrue(e.getMessage().startsWith(FILE + ":"), e.getMessage());
    }
  }

  @Test
  void loadReadsTheDirectoryAndNamesAMissingFile(@TempDir Path dir) throws Exception {
    CheckpointException e = assertThrows(CheckpointException.class, () -> ModelConfig.load(dir));
    assertTrue(e.getMessage().contains(dir.resolve("config.json").toString()), e.getMessage());
    Files.writeString(dir.resolve("config.json"), edit(MISTRAL_7B_V03, o -> o.put("sliding_window", 4096)));
    CheckpointException w = assertThrows(CheckpointException.class, () -> ModelConfig.load(dir));
    assertTrue(w.getMessage().startsWith(dir.resolve("config.json") + ": field \"sliding_window\""), w.getMessage());
    Files.writeString(dir.resolve("config.json"), QWEN3_06B);
    assertEquals(parse(QWEN3_06B), ModelConfig.load(dir));
  }
}
