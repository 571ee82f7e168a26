package io.kvasir.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Opening model directories: the expected tensor set and shapes, sharding, and the errors. */
class CheckpointTest {
  @TempDir
  Path tmp;

  private static void assertMentions(Throwable e, String... fragments) {
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f), "mentions '" + f + "': " + e.getMessage());
    }
  }

  private Path tiny(String name, TinyModelSpec spec) throws IOException {
    return TinyCheckpoints.write(spec, tmp.resolve(name));
  }

  @Test
  void opensSingleAndShardedCheckpoints() throws IOException {
    TinyModelSpec spec = TinyModelSpec.defaults(Architecture.QWEN2);
    for (int shards : new int[] {1, 4}) {
      Path dir = tiny("qwen2-" + shards, spec.withShards(shards));
      try (Checkpoint c = Checkpoint.open(dir)) {
        assertEquals(spec.toConfig(), c.config());
        assertEquals(shards, c.files().size());
        List<TensorSpec> expected = Weight.expected(c.config());
        assertEquals(expected.stream().map(TensorSpec::name).sorted().collect(Collectors.toList()),
            c.names().stream().sorted().collect(Collectors.toList()));
        long bytes = expected.stream().mapToLong(t -> t.elementCount() * 2).sum();
        assertEquals(bytes, c.weightBytes());
        TensorView q = c.tensor(Weight.Q_BIAS, 1);
        assertEquals("model.layers.1.self_attn.q_proj.bias", q.name());
        assertArrayEquals(new long[] {12 * 64}, q.shape());
        assertThrows(IllegalArgumentException.class, () -> c.tensor(Weight.Q, 2));
      }
    }
  }

  @Test
  void tiedHeadIsTheEmbeddingAndExtraTensorsAreIgnored() throws IOException {
    Path dir = tiny("qwen3", TinyModelSpec.builder(Architecture.QWEN3).optDtype(TensorDType.F32).build());
    List<CheckpointFiles.Entry> entries = new ArrayList<>(CheckpointFiles.entries(dir));
    entries.add(new CheckpointFiles.Entry("model.layers.0.self_attn.rotary_emb.inv_freq", new long[] {32},
        new float[32]));
    Path extra = CheckpointFiles.write(dir, tmp.resolve("extra"), entries, null);
    try (Checkpoint c = Checkpoint.open(extra)) {
      assertTrue(c.config().tieWordEmbeddings());
      assertFalse(c.contains("lm_head.weight"));
      assertSame(c.tensor(Weight.EMBED), c.tensor(Weight.LM_HEAD));
      assertTrue(c.contains("model.layers.0.self_attn.rotary_emb.inv_freq"));
    }
  }

  @Test
  void missingTensorIsNamed() throws IOException {
    Path dir = tiny("llama", TinyModelSpec.builder(Architecture.LLAMA).optDtype(TensorDType.F32).build());
    List<CheckpointFiles.Entry> entries = CheckpointFiles.entries(dir).stream()
        .filter(e -> !e.name().equals("model.layers.1.mlp.up_proj.weight")).collect(Collectors.toList());
    Path broken = CheckpointFiles.write(dir, tmp.resolve("no-up"), entries, null);
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(broken));
    assertMentions(e, broken.toString(), "\"model.layers.1.mlp.up_proj.weight\"", "missing", "[384, 192]");
    // An untied model needs lm_head.
    List<CheckpointFiles.Entry> noHead = CheckpointFiles.entries(dir).stream()
        .filter(x -> !x.name().equals("lm_head.weight")).collect(Collectors.toList());
    Path headless = CheckpointFiles.write(dir, tmp.resolve("no-head"), noHead, null);
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(headless)), "\"lm_head.weight\"",
        "[512, 192]");
  }

  @Test
  void wrongShapeNamesTensorExpectedAndFound() throws IOException {
    Path dir = tiny("mistral", TinyModelSpec.builder(Architecture.MISTRAL).optDtype(TensorDType.F32).build());
    List<CheckpointFiles.Entry> entries = new ArrayList<>();
    for (CheckpointFiles.Entry e : CheckpointFiles.entries(dir)) {
      // Same element count, transposed: only the shape check can catch it.
      entries.add(e.name().equals("model.layers.0.self_attn.k_proj.weight")
          ? new CheckpointFiles.Entry(e.name(), new long[] {192, 256}, e.values()) : e);
    }
    Path broken = CheckpointFiles.write(dir, tmp.resolve("k-transposed"), entries, null);
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(broken));
    assertMentions(e, "model.safetensors", "\"model.layers.0.self_attn.k_proj.weight\"", "has shape [192, 256]",
        "implies [256, 192]");
  }

  @Test
  void missingShardIsNamed() throws IOException {
    Path dir = tiny("sharded", TinyModelSpec.builder(Architecture.LLAMA).optShards(3).build());
    Files.delete(dir.resolve("model-00002-of-00003.safetensors"));
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
    assertMentions(e, "model.safetensors.index.json", "model-00002-of-00003.safetensors", "missing");
  }

  @Test
  void indexMustAgreeWithItsShards() throws IOException {
    Path dir = tiny("sharded", TinyModelSpec.builder(Architecture.LLAMA).optShards(2).build());
    Path index = dir.resolve(SafetensorsIndex.FILE_NAME);
    String text = Files.readString(index);
    // Point a tensor at the other shard.
    String moved = text.replaceFirst("(\"model.embed_tokens.weight\" : \")model-00001", "$1model-00002");
    assertFalse(moved.equals(text));
    Files.writeString(index, moved);
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(dir)),
        "\"model.embed_tokens.weight\"", "model-00002-of-00002.safetensors", "no such tensor");
    Files.writeString(index, text.replaceFirst("model-00001-of-00002", "../model-00001-of-00002"));
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(dir)), "weight_map",
        "plain name");
    Files.writeString(index, "{\"metadata\":{}}");
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(dir)), "weight_map", "required");
  }

  @Test
  void missingFilesAreExplained() throws IOException {
    Path notDir = tmp.resolve("nothing-here");
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(notDir)), "not a directory");
    Path dir = tiny("llama", TinyModelSpec.defaults(Architecture.LLAMA));
    Files.move(dir.resolve("model.safetensors"), dir.resolve("pytorch_model.bin"));
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(dir)), "no model.safetensors",
        "pytorch_model.bin");
    Files.delete(dir.resolve("pytorch_model.bin"));
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(dir)), "no weights found");
    Files.delete(dir.resolve("config.json"));
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(dir)), "config.json",
        "no such file");
  }

  @Test
  void truncatedWeightsAreRefusedOnOpen() throws IOException {
    Path dir = tiny("llama", TinyModelSpec.defaults(Architecture.LLAMA));
    Path weights = dir.resolve("model.safetensors");
    byte[] full = Files.readAllBytes(weights);
    Files.write(weights, java.util.Arrays.copyOf(full, full.length / 2));
    assertMentions(assertThrows(CheckpointException.class, () -> Checkpoint.open(dir)), weights.toString(),
        "truncated");
  }

  @Test
  void closedCheckpointRefusesLookups() throws IOException {
    Checkpoint c = Checkpoint.open(tiny("llama", TinyModelSpec.defaults(Architecture.LLAMA)));
    TensorView kept = c.tensor(Weight.FINAL_NORM);
    c.close();
    assertThrows(IllegalStateException.class, () -> c.tensor(Weight.FINAL_NORM));
    assertEquals(192, kept.elementCount());
    assertTrue(kept.data().getShort(0) != 0, "a view taken before close still reads the mapping");
  }
}
