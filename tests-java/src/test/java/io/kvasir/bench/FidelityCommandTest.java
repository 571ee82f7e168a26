package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import io.kvasir.testing.CliRun;

/** {@code kvasir-bench fidelity} in process on the tiny demo model: the record, the table, the errors. */
class FidelityCommandTest {
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
  void fidelityOfTaskPromptsWritesTheRecordAndTheTable() throws Exception {
    Path json = tmp.resolve("fidelity.json");
    CliRun r = run("fidelity", "--model", "tiny:llama", "--task", "passkey,kv_retrieval", "--length", "400", "--count",
        "2", "--haystack", BenchFixtures.haystack(tmp).toString(), "--tokens", "6", "--batch", "2", "--page-tokens",
        "8", "--policies", "full;quest:k=2", "--out", json.toString());
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("| policy | group | prompts | steps | mean KL |"), r.out());
    assertTrue(r.out().contains("| quest:k=2 | passkey/400 | 2 | 12 |"), r.out());
    JsonNode root = new ObjectMapper().readTree(json.toFile());
    List<String> header = List.of("record", "topic", "date", "git_commit", "device", "library", "command",
        "configuration", "results");
    List<String> fields = new java.util.ArrayList<>();
    root.fieldNames().forEachRemaining(fields::add);
    assertEquals(header, fields.subList(0, header.size()));
    assertEquals("fidelity", root.get("topic").asText());
    assertEquals(1.0, root.at("/configuration/baseline_self_agreement").asDouble());
    assertEquals(4, root.at("/configuration/prompts/count").asInt());
    JsonNode results = root.get("results");
    assertEquals(6, results.size(), "two groups and all, per policy");
    for (JsonNode s : results) {
      assertTrue(s.at("/kl_nats/mean").isNumber() && s.at("/first_divergence/median").isNumber(), s.toString());
      assertEquals(6, s.at("/kl_curve/mean_kl").size(), "one point per step of --tokens 6");
      assertEquals(6 * s.get("prompts").asInt(), s.get("steps").asInt());
      if (s.get("policy").asText().equals("full")) {
        assertEquals(0.0, s.at("/kl_nats/max").asDouble(), "full against full on the CPU: the same logits");
        assertEquals(1.0, s.get("token_agreement").asDouble());
      }
    }
    assertEquals(4, root.at("/per_prompt/quest:k=2").size());
  }

  @Test
  void fidelityReadsPromptsFromJsonlAndRefusesBadCommandLines() throws Exception {
    Path prompts = Files.writeString(tmp.resolve("p.jsonl"), "{\"id\": \"one\", \"prompt\": \"Say something long.\"}\n"
        + "\n{\"prompt\": \"And another thing.\", \"task\": \"free\"}\n");
    CliRun r = run("fidelity", "--model", "tiny:llama", "--prompts", prompts.toString(), "--tokens", "4", "--policies",
        "quest:k=1", "--page-tokens", "4");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("| quest:k=1 | p.jsonl | 1 | 4 |"), r.out());
    assertTrue(r.out().contains("| quest:k=1 | free | 1 | 4 |"), r.out());
    assertTrue(r.out().contains("| quest:k=1 | all | 2 | 8 |"), r.out());

    CliRun bad = run("fidelity", "--model", "tiny:llama", "--prompts", prompts.toString(), "--policies", "quest:k=0");
    assertEquals(2, bad.exit());
    assertTrue(bad.err().contains("quest"), bad.err());
    CliRun neither = run("fidelity", "--model", "tiny:llama", "--policies", "full");
    assertEquals(2, neither.exit());
    assertTrue(neither.err().contains("--prompts"), neither.err());
    CliRun policy = run("fidelity", "--model", "tiny:llama", "--prompts", prompts.toString(), "--policies", "full",
        "--policy", "full");
    assertEquals(2, policy.exit());
    Path broken = Files.writeString(tmp.resolve("b.jsonl"), "{\"text\": \"no prompt\"}\n");
    CliRun noPrompt = run("fidelity", "--model", "tiny:llama", "--prompts", broken.toString(), "--policies", "full");
    assertEquals(1, noPrompt.exit());
    assertTrue(noPrompt.err().contains("line 1") && noPrompt.err().contains("\"prompt\""), noPrompt.err());
  }
}
