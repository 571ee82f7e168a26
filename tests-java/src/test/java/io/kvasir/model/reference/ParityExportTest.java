package io.kvasir.model.reference;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvasir.model.Architecture;
import io.kvasir.model.TensorDType;
import io.kvasir.model.TinyCheckpoints;
import io.kvasir.model.TinyModelSpec;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Exports tiny checkpoints with this reference's logits and greedy continuations, for
 * {@code tools/peers/reference_parity.py} to compare against transformers on a machine that has
 * it (the GPU machine). Runs only when asked:
 * {@code mvn -pl tests-java -am verify -Dtest=ParityExportTest -Dsurefire.failIfNoSpecifiedTests=false
 * -Dkvasir.parity.out=/abs/dir}; skipped otherwise. Files per case: the model directory,
 * {@code <case>.logits.f64} (little-endian doubles, [tokens][vocab]) and one {@code cases.json}.
 */
class ParityExportTest {
  /** Cases chosen to cover every architecture feature, dtype and sharding the reader supports. */
  static Map<String, TinyModelSpec> cases() {
    Map<String, TinyModelSpec> c = new LinkedHashMap<>();
    c.put("llama-llama3-bf16-3shards", TinyModelSpec.builder(Architecture.LLAMA).optShards(3).optSeed(11).build());
    c.put("qwen3-tied-f32", TinyModelSpec.builder(Architecture.QWEN3).optDtype(TensorDType.F32).optSeed(12).build());
    c.put("mistral-f32", TinyModelSpec.builder(Architecture.MISTRAL).optDtype(TensorDType.F32).optSeed(13).build());
    c.put("qwen2-bias-f32", TinyModelSpec.builder(Architecture.QWEN2).optDtype(TensorDType.F32).optSeed(14).build());
    c.put("qwen3-hd128-f16", TinyModelSpec.builder(Architecture.QWEN3).optDtype(TensorDType.F16).optHeads(8, 2)
        .optHeadDim(128).optHiddenSize(256).optNumLayers(3).optSeed(15).build());
    c.put("llama-plain-mha-tied-f32", TinyModelSpec.builder(Architecture.LLAMA).optDtype(TensorDType.F32)
        .optHeads(4, 4).optHeadDim(128).optRopeScaling(null).optRopeTheta(10000).optTieWordEmbeddings(true)
        .optSeed(16).build());
    return c;
  }

  @Test
  void export() throws IOException {
    String out = System.getProperty("kvasir.parity.out");
    Assumptions.assumeTrue(out != null, "set -Dkvasir.parity.out=DIR to export parity cases");
    Path root = Files.createDirectories(Path.of(out));
    StringBuilder json = new StringBuilder("[");
    SplittableRandom rng = new SplittableRandom(99);
    for (Map.Entry<String, TinyModelSpec> e : cases().entrySet()) {
      Path dir = TinyCheckpoints.write(e.getValue(), root.resolve(e.getKey()));
      ReferenceModel m = ReferenceModel.load(dir);
      int[] tokens = new int[24];
      for (int i = 0; i < tokens.length; i++) {
        tokens[i] = rng.nextInt(m.vocabSize());
      }
      double[][] logits = m.logits(tokens);
      ByteBuffer b = ByteBuffer.allocate(tokens.length * m.vocabSize() * 8).order(ByteOrder.LITTLE_ENDIAN);
      for (double[] row : logits) {
        for (double v : row) {
          b.putDouble(v);
        }
      }
      Files.write(root.resolve(e.getKey() + ".logits.f64"), b.array());
      int[] prompt = Arrays.copyOf(tokens, 8);
      ReferenceModel.Continuation c = m.greedy(prompt, 16);
      json.append(json.length() > 1 ? "," : "").append("{\"name\":\"").append(e.getKey())
          .append("\",\"tokens\":").append(Arrays.toString(tokens))
          .append(",\"greedy_prompt\":").append(Arrays.toString(prompt))
          .append(",\"greedy\":").append(Arrays.toString(c.tokens()))
          .append(",\"margins\":").append(Arrays.toString(c.top2Margins())).append("}");
    }
    Files.writeString(root.resolve("cases.json"), json.append("]").toString());
    assertEquals(cases().size(), Files.readString(root.resolve("cases.json")).split("\"name\"").length - 1);
  }
}
