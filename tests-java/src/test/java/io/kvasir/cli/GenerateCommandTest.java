package io.kvasir.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.model.Architecture;
import io.kvasir.model.TinyCheckpoints;
import io.kvasir.model.TinyModelSpec;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.Devices;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import io.kvasir.testing.CliRun;

/** {@code kvasir generate} in process: output, the files it writes, and each refusal's message. */
class GenerateCommandTest {
  @TempDir
  Path tmp;

  @BeforeEach
  void isolateTheModelCache() {
    System.setProperty("kvasir.cache", tmp.resolve("cache").toString());
  }

  @AfterEach
  void restore() {
    System.clearProperty("kvasir.cache");
  }

  private static CliRun run(String... args) {
    return CliRun.of(KvasirCli.commandLine(), args);
  }

  @Test
  void greedyIdsAreReproducibleAndStatsArePrinted() {
    CliRun a = run("generate", "--model", "tiny:llama", "--prompt-ids", "5,6,7,8", "--max-tokens", "6", "--ignore-eos",
        "--greedy-ids");
    assertEquals(0, a.exit(), a.err());
    String ids = a.out().lines().filter(l -> l.startsWith("ids: ")).findFirst().orElseThrow();
    assertEquals(6, ids.substring(5).trim().split(" ").length, ids);
    assertTrue(a.out().contains("4 prompt tokens, 6 generated (length)"), a.out());
    CliRun b = run("generate", "--model", "tiny:llama", "--prompt-ids", "5,6,7,8", "--max-tokens", "6", "--ignore-eos",
        "--greedy-ids");
    assertTrue(b.out().contains(ids), "greedy decoding must repeat: " + b.out());
  }

  @Test
  void aCachePolicyGivesTheSameGreedyTokensAndBadSpecsAreRefused() {
    String[] base = {"generate", "--model", "tiny:llama", "--prompt-ids", "5,6,7,8,9,10,11,12,13,14,15,16,17,18,19",
        "--max-tokens", "8", "--ignore-eos", "--greedy-ids", "--dtype", "f32"};
    CliRun plain = run(base);
    assertEquals(0, plain.exit(), plain.err());
    String ids = plain.out().lines().filter(l -> l.startsWith("ids: ")).findFirst().orElseThrow();
    for (String[] extra : new String[][] {{"--policy", "full"}, {"--policy", "quest:k=64", "--page-tokens", "4"},
        {"--policy", "full", "--no-prefix-cache"}}) {
      String[] args = java.util.Arrays.copyOf(base, base.length + extra.length);
      System.arraycopy(extra, 0, args, base.length, extra.length);
      CliRun r = run(args);
      assertEquals(0, r.exit(), r.err());
      assertEquals(ids, r.out().lines().filter(l -> l.startsWith("ids: ")).findFirst().orElseThrow(),
          String.join(" ", extra));
    }
    CliRun bad = run("generate", "--model", "tiny:llama", "--prompt-ids", "1", "--policy", "qest:k=4");
    assertEquals(2, bad.exit());
    assertTrue(bad.err().contains("qest") && bad.err().contains("quest"), bad.err());
    CliRun lonely = run("generate", "--model", "tiny:llama", "--prompt-ids", "1", "--no-prefix-cache");
    assertEquals(2, lonely.exit());
    assertTrue(lonely.err().contains("--no-prefix-cache needs --policy"), lonely.err());
  }

  @Test
  void nSamplesShareThePromptAndEachIsPrinted() {
    // Greedy samples are all the single greedy continuation: the same ids as a plain run.
    CliRun plain = run("generate", "--model", "tiny:llama", "--prompt-ids", "5,6,7,8,9", "--max-tokens", "6",
        "--ignore-eos", "--greedy-ids");
    assertEquals(0, plain.exit(), plain.err());
    String ids = plain.out().lines().filter(l -> l.startsWith("ids: ")).findFirst().orElseThrow();
    CliRun greedy = run("generate", "--model", "tiny:llama", "--prompt-ids", "5,6,7,8,9", "--max-tokens", "6",
        "--ignore-eos", "--greedy-ids", "--policy", "full", "--n", "3");
    assertEquals(0, greedy.exit(), greedy.err());
    assertEquals(List.of(ids, ids, ids), greedy.out().lines().filter(l -> l.startsWith("ids: ")).toList());
    assertEquals(3, greedy.out().lines().filter(l -> l.startsWith("[sample ")).count(), greedy.out());
    assertTrue(greedy.out().contains("3 samples, 18 tokens generated in all"), greedy.out());
    // Sampled: three different seeds of one request would be a coincidence to agree everywhere.
    CliRun sampled = run("generate", "--model", "tiny:llama", "--prompt-ids", "5,6,7,8,9", "--max-tokens", "12",
        "--ignore-eos", "--greedy-ids", "--policy", "full", "--n", "3", "--temperature", "1.5");
    assertEquals(0, sampled.exit(), sampled.err());
    assertEquals(3, sampled.out().lines().filter(l -> l.startsWith("ids: ")).distinct().count(), sampled.out());
    CliRun bad = run("generate", "--model", "tiny:llama", "--prompt-ids", "1", "--n", "2", "--batch", "2");
    assertEquals(2, bad.exit());
    assertTrue(bad.err().contains("--n 2"), bad.err());
  }

  @Test
  void textPromptsGoThroughTheTokenizerAndTheChatTemplate() {
    CliRun r = run("generate", "--model", "tiny:qwen3", "--prompt", "Hello, KV cache", "--chat", "--system", "Be brief",
        "--max-tokens", "4", "--ignore-eos");
    assertEquals(0, r.exit(), r.err());
    // The byte-level demo tokenizer: one token per UTF-8 byte of the rendered conversation.
    assertTrue(r.out().contains("generated (length)"), r.out());
  }

  @Test
  void logitsOutWritesANumpyFloat32Vector() throws Exception {
    Path npy = tmp.resolve("logits.npy");
    CliRun r = run("generate", "--model", "tiny:mistral", "--prompt-ids", "1,2,3", "--max-tokens", "1", "--logits-out",
        npy.toString());
    assertEquals(0, r.exit(), r.err());
    byte[] bytes = Files.readAllBytes(npy);
    assertEquals((byte) 0x93, bytes[0]);
    assertEquals("NUMPY", new String(bytes, 1, 5, StandardCharsets.US_ASCII));
    int headerLength = (bytes[8] & 0xff) | (bytes[9] & 0xff) << 8;
    assertEquals(0, (10 + headerLength) % 64, "the data starts 64-byte aligned");
    String header = new String(bytes, 10, headerLength, StandardCharsets.US_ASCII);
    assertTrue(header.contains("'descr': '<f4'") && header.contains("'shape': (259,)"), header);
    ByteBuffer data = ByteBuffer.wrap(bytes, 10 + headerLength, bytes.length - 10 - headerLength)
        .order(ByteOrder.LITTLE_ENDIAN);
    float[] logits = new float[259];
    data.asFloatBuffer().get(logits);
    assertTrue(Arrays.stream(toDoubles(logits)).allMatch(Double::isFinite));
    assertTrue(Arrays.stream(toDoubles(logits)).distinct().count() > 100, "logits must vary");
  }

  private static double[] toDoubles(float[] f) {
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) d[i] = f[i];
    return d;
  }

  @Test
  void refusalsNameTheProblem() throws Exception {
    CliRun missing = run("generate", "--model", tmp.resolve("nope").toString(), "--prompt-ids", "1");
    assertEquals(1, missing.exit());
    assertTrue(missing.err().contains("nope") && missing.err().contains("config.json"), missing.err());

    Path noTokenizer = TinyCheckpoints.write(TinyModelSpec.defaults(Architecture.QWEN2), tmp.resolve("qwen2"));
    CliRun text = run("generate", "--model", noTokenizer.toString(), "--prompt", "hi");
    assertEquals(1, text.exit());
    assertTrue(text.err().contains("no tokenizer.json"), text.err());

    CliRun tooLong = run("generate", "--model", noTokenizer.toString(), "--prompt-tokens", "40", "--max-context", "32");
    assertEquals(1, tooLong.exit());
    assertTrue(tooLong.err().contains("the prompt has 40 tokens; the context holds 32"), tooLong.err());

    CliRun badToken = run("generate", "--model", noTokenizer.toString(), "--prompt-ids", "1,99999");
    assertEquals(1, badToken.exit());
    assertTrue(badToken.err().contains("outside the vocabulary"), badToken.err());

    CliRun badTemperature = run("generate", "--model", noTokenizer.toString(), "--prompt-ids", "1", "--temperature", "-1");
    assertEquals(1, badTemperature.exit());
    assertTrue(badTemperature.err().contains("temperature=-1.0 must be finite and >= 0"), badTemperature.err());

    CliRun twoPrompts = run("generate", "--model", "tiny:llama", "--prompt", "a", "--prompt-ids", "1");
    assertEquals(2, twoPrompts.exit());

    CliRun unknown = run("generate", "--model", "synthetic:gpt-9", "--prompt-tokens", "4");
    assertEquals(1, unknown.exit());
    assertTrue(unknown.err().contains("unknown synthetic model \"gpt-9\""), unknown.err());

    if (!Devices.count(Backend.CUDA).available()) {
      CliRun cuda = run("generate", "--model", "tiny:llama", "--prompt-ids", "1", "--device", "cuda");
      assertEquals(1, cuda.exit());
      assertTrue(cuda.err().contains("no CUDA device"), cuda.err());
    }
  }
}
