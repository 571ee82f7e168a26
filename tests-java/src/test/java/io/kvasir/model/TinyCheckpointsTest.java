package io.kvasir.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.ops.Bf16;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Tiny checkpoints: complete, labelled, deterministic, and read back bit-exactly. */
class TinyCheckpointsTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  /** The bytes a writer must produce for {@code values} in {@code dtype} (encoders tested on their own). */
  private static byte[] encode(TensorDType dtype, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      if (dtype == TensorDType.F32) {
        b.putInt(Float.floatToRawIntBits(v));
      } else if (dtype == TensorDType.BF16) {
        b.putShort(Bf16.fromFloat(v));
      } else {
        b.putShort(Float16.fromFloat(v));
      }
    }
    return b.array();
  }

  private static byte[] bytes(TensorView t) {
    byte[] out = new byte[(int) t.byteSize()];
    t.data().get(out);
    return out;
  }

  @ParameterizedTest
  @EnumSource(Architecture.class)
  void everyDtypeAndShardingReadsBackBitExactly(Architecture arch) throws IOException {
    for (TensorDType dtype : TensorDType.values()) {
      for (int shards : new int[] {1, 3}) {
        TinyModelSpec spec = TinyModelSpec.builder(arch).optDtype(dtype).optShards(shards).optSeed(7).build();
        Path dir = TinyCheckpoints.write(spec, tmp.resolve(arch + "-" + dtype + "-" + shards));
        try (Checkpoint c = Checkpoint.open(dir)) {
          assertEquals(spec.toConfig(), c.config(), "config.json describes the spec");
          assertEquals(shards, c.files().size());
          for (TensorSpec t : Weight.expected(c.config())) {
            TensorView view = c.tensor(t.name());
            assertEquals(dtype, view.dtype());
            assertArrayEquals(encode(dtype, TinyCheckpoints.values(spec, t.name())), bytes(view),
                arch + " " + dtype + " " + shards + " " + t.name());
          }
        }
      }
    }
  }

  @Test
  void shardingAndDtypeDoNotChangeTheWeights() throws IOException {
    TinyModelSpec f32 = TinyModelSpec.builder(Architecture.QWEN3).optDtype(TensorDType.F32).optSeed(3).build();
    Path single = TinyCheckpoints.write(f32, tmp.resolve("single"));
    Path sharded = TinyCheckpoints.write(f32.withShards(5), tmp.resolve("sharded"));
    Path bf16 = TinyCheckpoints.write(f32.withDtype(TensorDType.BF16), tmp.resolve("bf16"));
    try (Checkpoint a = Checkpoint.open(single); Checkpoint b = Checkpoint.open(sharded);
        Checkpoint h = Checkpoint.open(bf16)) {
      for (String name : a.names()) {
        assertArrayEquals(bytes(a.tensor(name)), bytes(b.tensor(name)), name);
        float[] exact = CheckpointFiles.floats(a.tensor(name));
        float[] rounded = CheckpointFiles.floats(h.tensor(name));
        for (int i = 0; i < exact.length; i++) {
          assertEquals(Bf16.round(exact[i]), rounded[i], 0f, name + "[" + i + "]");
        }
      }
    }
    JsonNode index = JSON.readTree(sharded.resolve(SafetensorsIndex.FILE_NAME).toFile());
    long total = 0;
    for (int k = 1; k <= 5; k++) {
      Path shard = sharded.resolve(String.format("model-%05d-of-00005.safetensors", k));
      try (SafetensorsFile f = SafetensorsFile.open(shard)) {
        assertFalse(f.names().isEmpty(), "every shard holds tensors");
        total += f.tensors().stream().mapToLong(TensorView::byteSize).sum();
      }
    }
    assertEquals(total, index.get("metadata").get("total_size").asLong());
  }

  @Test
  void sameSeedSameFilesOtherSeedOtherWeights() throws IOException {
    TinyModelSpec spec = TinyModelSpec.builder(Architecture.MISTRAL).optSeed(42).build();
    Path a = TinyCheckpoints.write(spec, tmp.resolve("a"));
    Path b = TinyCheckpoints.write(spec, tmp.resolve("b"));
    Path c = TinyCheckpoints.write(TinyModelSpec.builder(Architecture.MISTRAL).optSeed(43).build(), tmp.resolve("c"));
    assertArrayEquals(Files.readAllBytes(a.resolve("model.safetensors")), Files.readAllBytes(b.resolve("model.safetensors")));
    assertFalse(java.util.Arrays.equals(Files.readAllBytes(a.resolve("model.safetensors")),
        Files.readAllBytes(c.resolve("model.safetensors"))));
  }

  @Test
  void weightsFollowTheDocumentedDistributions() {
    TinyModelSpec spec = TinyModelSpec.builder(Architecture.QWEN2).optSeed(5).build();
    // 2-D: std 1/sqrt(in_features); norms 1 + N(0, 0.1); biases N(0, 0.2). 5 sigma of the std estimate.
    assertMoments(TinyCheckpoints.values(spec, "model.layers.0.self_attn.q_proj.weight"), 0, 1 / Math.sqrt(192));
    assertMoments(TinyCheckpoints.values(spec, "model.layers.0.self_attn.o_proj.weight"), 0, 1 / Math.sqrt(768));
    assertMoments(TinyCheckpoints.values(spec, "model.layers.1.mlp.down_proj.weight"), 0, 1 / Math.sqrt(384));
    assertMoments(TinyCheckpoints.values(spec, "model.embed_tokens.weight"), 0, 1 / Math.sqrt(192));
    assertMoments(TinyCheckpoints.values(spec, "model.layers.0.self_attn.q_proj.bias"), 0, 0.2);
    float[] norm = TinyCheckpoints.values(spec, "model.layers.0.input_layernorm.weight");
    assertMoments(norm, 1, 0.1);
  }

  private static void assertMoments(float[] v, double mean, double std) {
    double sum = 0;
    double sq = 0;
    for (float x : v) {
      sum += x;
      sq += (x - mean) * (x - mean);
    }
    double m = sum / v.length;
    double s = Math.sqrt(sq / v.length);
    assertEquals(mean, m, 5 * std / Math.sqrt(v.length), "mean");
    assertEquals(std, s, 5 * std * Math.sqrt(2.0 / v.length) + 1e-9, "std");
  }

  @Test
  void filesAreLabelledAndHaveWhatTransformersNeeds() throws IOException {
    TinyModelSpec spec = TinyModelSpec.builder(Architecture.LLAMA).optEosTokenId(7).build();
    Path dir = TinyCheckpoints.write(spec, tmp.resolve("llama"));
    JsonNode config = JSON.readTree(dir.resolve("config.json").toFile());
    assertEquals(TinyCheckpoints.NOTE, config.get("kvasir_note").asText());
    assertEquals("LlamaForCausalLM", config.get("architectures").get(0).asText());
    assertEquals("llama3", config.get("rope_scaling").get("rope_type").asText());
    assertEquals(7, config.get("eos_token_id").asInt());
    assertEquals("bfloat16", config.get("torch_dtype").asText());
    assertTrue(config.has("sliding_window") && config.get("sliding_window").isNull());
    JsonNode generation = JSON.readTree(dir.resolve("generation_config.json").toFile());
    assertEquals(7, generation.get("eos_token_id").asInt());
    assertEquals(TinyCheckpoints.NOTE, generation.get("kvasir_note").asText());
    assertFalse(Files.exists(dir.resolve("tokenizer.json")));
    try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
      assertEquals("pt", f.metadata().get("format"), "transformers refuses safetensors without format pt");
    }
    // Default tiny shapes: 12 query / 4 KV heads of 64, hidden 192.
    ModelConfig c = ModelConfig.load(dir);
    assertEquals(192, c.hiddenSize());
    assertEquals(12, c.numAttentionHeads());
    assertEquals(4, c.numKeyValueHeads());
    assertEquals(64, c.headDim());
  }

  @Test
  void writesOnlyIntoNewOrEmptyDirectoriesAndLeavesNoTemporaries() throws IOException {
    TinyModelSpec spec = TinyModelSpec.defaults(Architecture.QWEN3);
    Path empty = Files.createDirectory(tmp.resolve("empty"));
    TinyCheckpoints.write(spec, empty);
    assertTrue(Files.exists(empty.resolve("model.safetensors")));
    assertThrows(FileAlreadyExistsException.class, () -> TinyCheckpoints.write(spec, empty));
    Path lazy = tmp.resolve("nested/lazy");
    assertTrue(TinyCheckpoints.writeIfAbsent(spec, lazy));
    assertFalse(TinyCheckpoints.writeIfAbsent(spec, lazy));
    try (Stream<Path> all = Files.walk(tmp)) {
      List<Path> temps = all.filter(p -> p.getFileName().toString().contains(".tmp-")).collect(Collectors.toList());
      assertEquals(List.of(), temps);
    }
  }

  @Test
  void inconsistentSpecsAreRefused() {
    assertThrows(CheckpointException.class,
        () -> TinyModelSpec.builder(Architecture.LLAMA).optHeads(12, 5).build());
    assertThrows(CheckpointException.class, () -> TinyModelSpec.builder(Architecture.LLAMA).optHeadDim(63).build());
    assertThrows(IllegalArgumentException.class,
        () -> TinyModelSpec.builder(Architecture.LLAMA).optHiddenSize(128).build(), "128 is not a multiple of 12");
    assertThrows(IllegalArgumentException.class,
        () -> TinyModelSpec.builder(Architecture.LLAMA).optEosTokenId(512).build());
    TinyModelSpec tooManyShards = TinyModelSpec.builder(Architecture.LLAMA).optNumLayers(1).optShards(50).build();
    assertThrows(IllegalArgumentException.class, () -> TinyCheckpoints.write(tooManyShards, tmp.resolve("x")));
    assertFalse(Files.exists(tmp.resolve("x")));
  }
}
