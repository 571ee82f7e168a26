package io.kvasir.model.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.model.Architecture;
import io.kvasir.model.CheckpointFiles;
import io.kvasir.model.ModelConfig;
import io.kvasir.model.TensorDType;
import io.kvasir.model.TinyCheckpoints;
import io.kvasir.model.TinyModelSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntBinaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Properties the reference forward must have, on tiny checkpoints of every architecture. */
class ReferenceModelTest {
  @TempDir
  Path tmp;

  private static int[] tokens(long seed, int n, int vocab) {
    SplittableRandom rng = new SplittableRandom(seed);
    int[] t = new int[n];
    for (int i = 0; i < n; i++) {
      t[i] = rng.nextInt(vocab);
    }
    return t;
  }

  private Path tiny(TinyModelSpec spec, String name) throws IOException {
    return TinyCheckpoints.write(spec, tmp.resolve(name));
  }

  @ParameterizedTest
  @EnumSource(Architecture.class)
  void causal(Architecture arch) throws IOException {
    ReferenceModel m = ReferenceModel.load(tiny(TinyModelSpec.defaults(arch), "m"));
    int[] a = tokens(1, 12, m.vocabSize());
    int[] b = a.clone();
    for (int t = 6; t < b.length; t++) {
      b[t] = (b[t] + 1 + t) % m.vocabSize();
    }
    double[][] la = m.logits(a);
    double[][] lb = m.logits(b);
    for (int t = 0; t < 6; t++) {
      assertArrayEquals(la[t], lb[t], 0.0, "position " + t + " must not see later tokens");
    }
    for (int t = 6; t < 12; t++) {
      assertFalse(Arrays.equals(la[t], lb[t]), "position " + t + " sees its own changed token");
    }
  }

  @ParameterizedTest
  @EnumSource(Architecture.class)
  void logitsAreFarFromUniformButNotDegenerate(Architecture arch) throws IOException {
    ReferenceModel m = ReferenceModel.load(tiny(TinyModelSpec.defaults(arch), "m"));
    double[][] logits = m.logits(tokens(2, 8, m.vocabSize()));
    for (double[] row : logits) {
      double mean = Arrays.stream(row).average().orElseThrow();
      double std = Math.sqrt(Arrays.stream(row).map(x -> (x - mean) * (x - mean)).average().orElseThrow());
      assertTrue(std > 0.3 && std < 3, arch + ": logit std " + std + " (TinyCheckpoints promises order 1)");
      assertTrue(Arrays.stream(row).allMatch(Double::isFinite));
    }
  }

  /** Positions enter only through RoPE, so shifting every position leaves the logits unchanged. */
  @ParameterizedTest
  @EnumSource(Architecture.class)
  void shiftingAllPositionsChangesNothing(Architecture arch) throws IOException {
    ReferenceModel m = ReferenceModel.load(tiny(TinyModelSpec.defaults(arch), "m"));
    int[] t = tokens(3, 10, m.vocabSize());
    double[][] a = m.logits(t, 0);
    double[][] b = m.logits(t, 1234);
    for (int i = 0; i < t.length; i++) {
      assertArrayEquals(a[i], b[i], 1e-9, "position " + i);
    }
  }

  /**
   * GQA as transformers' repeat_kv defines it: an MHA model whose key/value head h is a copy of
   * the GQA model's head h / group computes the same logits. The mapping h % kvHeads gives
   * different logits, so the test can tell the two apart.
   */
  @Test
  void gqaHeadMappingMatchesRepeatKv() throws IOException {
    TinyModelSpec spec = TinyModelSpec.builder(Architecture.QWEN2).optDtype(TensorDType.F32).optSeed(9).build();
    Path gqa = tiny(spec, "gqa");
    int heads = spec.numHeads();
    int group = heads / spec.numKvHeads();
    Path mha = expandKvHeads(gqa, spec, "mha", (h, g) -> h / g, group);
    Path wrong = expandKvHeads(gqa, spec, "wrong", (h, g) -> h % (heads / g), group);
    int[] t = tokens(4, 9, spec.vocabSize());
    double[][] reference = ReferenceModel.load(gqa).logits(t);
    double[][] expanded = ReferenceModel.load(mha).logits(t);
    double[][] mismapped = ReferenceModel.load(wrong).logits(t);
    double maxWrong = 0;
    for (int i = 0; i < t.length; i++) {
      assertArrayEquals(reference[i], expanded[i], 1e-12, "position " + i);
      for (int v = 0; v < reference[i].length; v++) {
        maxWrong = Math.max(maxWrong, Math.abs(reference[i][v] - mismapped[i][v]));
      }
    }
    assertTrue(maxWrong > 1e-3, "the h % kv_heads mapping must differ; max diff " + maxWrong);
  }

  /** Rewrites a GQA checkpoint as MHA: k/v heads (and Qwen2 biases) copied per query head. */
  private Path expandKvHeads(Path src, TinyModelSpec spec, String name, IntBinaryOperator sourceHead, int group)
      throws IOException {
    int d = spec.headDim();
    int heads = spec.numHeads();
    List<CheckpointFiles.Entry> out = new ArrayList<>();
    for (CheckpointFiles.Entry e : CheckpointFiles.entries(src)) {
      boolean kv = e.name().matches(".*self_attn\\.[kv]_proj\\.(weight|bias)");
      if (!kv) {
        out.add(e);
        continue;
      }
      int rowLength = e.shape().length == 2 ? (int) e.shape()[1] : 1;
      float[] expanded = new float[heads * d * rowLength];
      for (int h = 0; h < heads; h++) {
        int from = sourceHead.applyAsInt(h, group);
        System.arraycopy(e.values(), from * d * rowLength, expanded, h * d * rowLength, d * rowLength);
      }
      long[] shape = e.shape().length == 2 ? new long[] {heads * d, rowLength} : new long[] {heads * d};
      out.add(new CheckpointFiles.Entry(e.name(), shape, expanded));
    }
    String config = Files.readString(src.resolve("config.json"))
        .replace("\"num_key_value_heads\" : " + spec.numKvHeads(), "\"num_key_value_heads\" : " + heads);
    assertTrue(config.contains("\"num_key_value_heads\" : " + heads), config);
    return CheckpointFiles.write(src, tmp.resolve(name), out, config);
  }

  /** Qwen3's q/k norms and Qwen2's biases are read and used (changing them changes the logits). */
  @Test
  void architectureSpecificWeightsMatter() throws IOException {
    for (Architecture arch : new Architecture[] {Architecture.QWEN3, Architecture.QWEN2}) {
      TinyModelSpec spec = TinyModelSpec.builder(arch).optDtype(TensorDType.F32).build();
      Path dir = tiny(spec, arch + "-base");
      String target = arch == Architecture.QWEN3 ? "model.layers.0.self_attn.k_norm.weight"
          : "model.layers.0.self_attn.k_proj.bias";
      List<CheckpointFiles.Entry> changed = new ArrayList<>();
      for (CheckpointFiles.Entry e : CheckpointFiles.entries(dir)) {
        if (e.name().equals(target)) {
          float[] v = e.values().clone();
          for (int i = 0; i < v.length; i++) {
            v[i] += (i % 2 == 0 ? 0.5f : -0.5f);
          }
          e = new CheckpointFiles.Entry(e.name(), e.shape(), v);
        }
        changed.add(e);
      }
      Path altered = CheckpointFiles.write(dir, tmp.resolve(arch + "-altered"), changed, null);
      int[] t = tokens(5, 6, spec.vocabSize());
      double[][] a = ReferenceModel.load(dir).logits(t);
      double[][] b = ReferenceModel.load(altered).logits(t);
      assertFalse(Arrays.deepEquals(a, b), arch + ": " + target + " must affect the logits");
      // Position 0 attends only to itself: a k change cannot alter it (softmax over one key is 1).
      assertArrayEquals(a[0], b[0], 1e-12, arch + ": position 0 ignores keys");
    }
  }

  @Test
  void bf16WeightsGiveLogitsCloseToF32() throws IOException {
    TinyModelSpec spec = TinyModelSpec.builder(Architecture.LLAMA).optDtype(TensorDType.F32).build();
    ReferenceModel f32 = ReferenceModel.load(tiny(spec, "f32"));
    ReferenceModel bf16 = ReferenceModel.load(tiny(spec.withDtype(TensorDType.BF16), "bf16"));
    ReferenceModel f16 = ReferenceModel.load(tiny(spec.withDtype(TensorDType.F16), "f16"));
    int[] t = tokens(6, 8, spec.vocabSize());
    double[][] a = f32.logits(t);
    double[][] b = bf16.logits(t);
    double[][] h = f16.logits(t);
    double worstBf16 = 0;
    double worstF16 = 0;
    for (int i = 0; i < t.length; i++) {
      for (int v = 0; v < a[i].length; v++) {
        worstBf16 = Math.max(worstBf16, Math.abs(a[i][v] - b[i][v]));
        worstF16 = Math.max(worstF16, Math.abs(a[i][v] - h[i][v]));
      }
    }
    // Weight rounding of 2^-9 (bf16) and 2^-12 (f16) relative moves order-1 logits by a few of those.
    assertTrue(worstBf16 > 0 && worstBf16 < 0.1, "bf16 vs f32 " + worstBf16);
    assertTrue(worstF16 > 0 && worstF16 < worstBf16, "f16 vs f32 " + worstF16);
  }

  @Test
  void greedyContinuationIsTheArgmaxOfTheFullForward() throws IOException {
    ReferenceModel m = ReferenceModel.load(tiny(TinyModelSpec.defaults(Architecture.QWEN3), "m"));
    int[] prompt = tokens(7, 5, m.vocabSize());
    ReferenceModel.Continuation c = m.greedy(prompt, 6);
    assertEquals(6, c.tokens().length);
    int[] seq = prompt;
    for (int step = 0; step < 6; step++) {
      double[] last = m.logits(seq)[seq.length - 1];
      int best = 0;
      for (int v = 1; v < last.length; v++) {
        best = last[v] > last[best] ? v : best;
      }
      assertEquals(best, c.tokens()[step], "step " + step);
      assertTrue(c.top2Margins()[step] >= 0);
      seq = Arrays.copyOf(seq, seq.length + 1);
      seq[seq.length - 1] = best;
    }
    assertArrayEquals(c.tokens(), m.greedy(prompt, 6).tokens(), "deterministic");
  }

  /** The reference reads config.json on its own; it must agree with the production parser. */
  @ParameterizedTest
  @EnumSource(Architecture.class)
  void ownConfigReaderAgreesWithModelConfig(Architecture arch) throws IOException {
    Path dir = tiny(TinyModelSpec.defaults(arch), "m");
    ReferenceConfig r = ReferenceConfig.read(dir);
    ModelConfig c = ModelConfig.load(dir);
    assertEquals(c.modelType(), r.modelType());
    assertEquals(c.vocabSize(), r.vocabSize());
    assertEquals(c.hiddenSize(), r.hiddenSize());
    assertEquals(c.intermediateSize(), r.intermediateSize());
    assertEquals(c.numHiddenLayers(), r.numLayers());
    assertEquals(c.numAttentionHeads(), r.numHeads());
    assertEquals(c.numKeyValueHeads(), r.numKvHeads());
    assertEquals(c.headDim(), r.headDim());
    assertEquals(c.rmsNormEps(), r.rmsNormEps());
    assertEquals(c.ropeTheta(), r.ropeTheta());
    assertEquals(c.ropeScaling() != null, r.llama3());
    if (c.ropeScaling() != null) {
      assertEquals(c.ropeScaling().factor(), r.ropeFactor());
      assertEquals(c.ropeScaling().originalMaxPositionEmbeddings(), r.originalMaxPositions());
    }
    assertEquals(c.tieWordEmbeddings(), r.tieWordEmbeddings());
    assertEquals(c.qkNorm(), r.qkNorm());
    assertEquals(c.qkvBias(), r.qkvBias());
  }
}
