package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.bench.tasks.TaskRecord;
import io.kvasir.engine.Engine;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.SamplingParams;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import io.kvasir.testing.CliRun;

/** {@code kvasir-bench} in process: tasks, eval and ppl on the tiny demo model, and the engine's token scoring. */
class BenchCommandsTest {
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
    return CliRun.of(BenchMain.commandLine(), args);
  }

  @Test
  void tasksWritesTheSameFileForAnyThreadCount() throws Exception {
    String haystack = BenchFixtures.haystack(tmp).toString();
    Path a = tmp.resolve("a.jsonl");
    Path b = tmp.resolve("b.jsonl");
    String mix = "passkey=0.3,niah_multikey=0.2,arithmetic=0.3,docqa=0.2";
    CliRun r = run("tasks", "--mix", mix, "--length-range", "300:900", "--count", "40", "--seed", "3", "--haystack",
        haystack, "--threads", "1", "--out", a.toString());
    assertEquals(0, r.exit(), r.err());
    r = run("tasks", "--mix", mix, "--length-range", "300:900", "--count", "40", "--seed", "3", "--haystack",
        haystack, "--threads", "2", "--out", b.toString());
    assertEquals(0, r.exit(), r.err());
    assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b));
    assertEquals(40, Files.readAllLines(a).size());

    Path c = tmp.resolve("c.jsonl");
    r = run("tasks", "--task", "passkey", "--length", "500", "--count", "3", "--depth", "0.5", "--haystack", haystack,
        "--out", c.toString());
    assertEquals(0, r.exit(), r.err());
    for (String line : Files.readAllLines(c)) {
      assertEquals(0.5, TaskRecord.fromJson(line).depth(), 0.1);
    }
  }

  @Test
  void tasksRefusesBadCommandLinesWithTheReason() {
    CliRun both = run("tasks", "--task", "passkey", "--mix", "passkey=1", "--length", "500");
    assertEquals(2, both.exit());
    CliRun range = run("tasks", "--task", "passkey", "--length-range", "500", "--haystack", "x");
    assertEquals(2, range.exit());
    assertTrue(range.err().contains("MIN:MAX"), range.err());
    Path missing = tmp.resolve("missing.txt");
    CliRun noFile = run("tasks", "--task", "passkey", "--length", "500", "--haystack", missing.toString(), "--out",
        tmp.resolve("x.jsonl").toString());
    assertEquals(1, noFile.exit());
    assertTrue(noFile.err().contains(missing.toString()), noFile.err());
    CliRun tooSmall = run("tasks", "--task", "docqa", "--length", "50", "--haystack", BenchFixtures.haystack(tmp).toString(),
        "--out", tmp.resolve("y.jsonl").toString());
    assertEquals(1, tooSmall.exit());
    assertTrue(tooSmall.err().contains("docqa") && tooSmall.err().contains("minimum"), tooSmall.err());
  }

  @Test
  void evalRunsAGridOnTheTinyModelAndWritesItsJson() throws Exception {
    Path json = tmp.resolve("eval.json");
    CliRun r = run("eval", "--model", "tiny:llama", "--task", "passkey,arithmetic", "--task", "kv_retrieval", "--length",
        "600", "--count", "3", "--seed", "1", "--haystack", BenchFixtures.haystack(tmp).toString(), "--batch", "2",
        "--out", json.toString());
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("| task | length | n | accuracy |"), r.out());
    assertTrue(r.out().contains("| passkey | 600 | 3 |"), r.out());
    JsonNode root = new ObjectMapper().readTree(json.toFile());
    assertEquals("tiny:llama", root.get("model").asText());
    assertTrue(root.get("device").asText().startsWith("cpu:0"), root.toString());
    assertTrue(root.has("date"));
    JsonNode results = root.get("results");
    assertEquals(3, results.size());
    for (JsonNode cell : results) {
      assertEquals(600, cell.get("length").asInt());
      assertEquals(3, cell.get("count").asInt());
      int correct = cell.get("correct").asInt();
      assertTrue(correct >= 0 && correct <= 3);
      assertEquals(correct / 3.0, cell.get("accuracy").asDouble(), 1e-9);
      assertEquals(3 - correct, cell.get("failures").size(), "random weights: every miss is listed (up to 5)");
      assertTrue(cell.get("max_total_tokens").asInt() <= 600, cell.toString());
      assertTrue(cell.get("prompt_budget").asInt() > 0 && cell.get("mean_prompt_tokens").asDouble() > 0);
    }
  }

  @Test
  void pplScoresWindowsOfTheText() throws Exception {
    Path json = tmp.resolve("ppl.json");
    CliRun r = run("ppl", "--model", "tiny:llama", "--text", BenchFixtures.haystack(tmp).toString(), "--window", "64",
        "--max-tokens", "300", "--batch", "3", "--dtype", "f32", "--out", json.toString());
    assertEquals(0, r.exit(), r.err());
    JsonNode root = new ObjectMapper().readTree(json.toFile());
    assertEquals(5, root.get("windows").asInt());  // 64 * 4 + 44
    assertEquals(4 * 63 + 43, root.get("scored_tokens").asInt());
    double ppl = root.get("perplexity").asDouble();
    // Random weights over a 259-token vocabulary: near uniform, far from a trained model.
    assertTrue(ppl > 1 && ppl < 1000 && Double.isFinite(ppl), "perplexity " + ppl);
    assertTrue(r.out().contains("| tiny:llama | 64 | 5 | 295 |"), r.out());
  }

  @Test
  void engineScoresTokensAsThePromptLogitsOfEachPrefix() {
    try (Engine e = Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optDtype(DType.F32)
        .optMaxContext(32).optMaxBatch(2).build()) {
      List<int[]> seqs = List.of(new int[] {72, 101, 108, 108, 111, 32, 75, 86}, new int[] {5, 6, 7},
          new int[] {9}, new int[] {200, 10, 30, 40, 50, 60});
      List<float[]> scores = e.scoreTokens(seqs);
      assertEquals(seqs.size(), scores.size());
      for (int s = 0; s < seqs.size(); ++s) {
        int[] seq = seqs.get(s);
        assertEquals(seq.length - 1, scores.get(s).length);
        for (int i = 1; i < seq.length; ++i) {
          float[] logits = e.generate(GenerationRequest.of(java.util.Arrays.copyOf(seq, i), 1, SamplingParams.greedy())
              .withPromptLogits(true)).promptLogits();
          double max = Double.NEGATIVE_INFINITY;
          for (float x : logits) max = Math.max(max, x);
          double sum = 0;
          for (float x : logits) sum += Math.exp(x - max);
          double expected = logits[seq[i]] - max - Math.log(sum);
          assertEquals(expected, scores.get(s)[i - 1], 1e-4, "sequence " + s + " token " + i);
        }
      }
      assertThrows(IllegalArgumentException.class, () -> e.scoreTokens(List.of(new int[40])), "longer than the context");
      assertThrows(IllegalArgumentException.class, () -> e.scoreTokens(List.of(new int[0])));
    }
  }
}
