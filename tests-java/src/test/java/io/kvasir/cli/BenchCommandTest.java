package io.kvasir.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import io.kvasir.testing.CliRun;

/** {@code kvasir bench ...} forwards to the kvasir-bench commands with their options. */
class BenchCommandTest {
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
  void benchHelpListsTheBenchCommands() {
    CliRun r = run("bench", "--help");
    assertEquals(0, r.exit(), r.err());
    for (String c : new String[] {"Usage: kvasir bench", "run", "serve", "eval", "ppl", "tasks"}) {
      assertTrue(r.out().contains(c), "missing " + c + " in:\n" + r.out());
    }
    CliRun top = run("--help");
    assertTrue(top.out().contains("bench"), top.out());
    CliRun sub = run("bench", "run", "--help");
    assertEquals(0, sub.exit());
    assertTrue(sub.out().contains("--policies") && sub.out().contains("--max-concurrency"), sub.out());
  }

  @Test
  void benchRunWritesTheSameRecordsAsKvasirBench() throws Exception {
    Path out = tmp.resolve("out");
    CliRun r = run("bench", "run", "--model", "tiny:llama", "--workload", "offline", "--requests", "2", "--prompt-len",
        "6", "--output-len", "2", "--page-tokens", "8", "--out", out.toString());
    assertEquals(0, r.exit(), r.err() + r.out());
    JsonNode summary = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
    assertEquals("ok", summary.get("records").get(0).get("status").asText());
    assertTrue(summary.get("command").asText().startsWith("kvasir-bench run --model tiny:llama"),
        summary.get("command").asText());
    CliRun bad = run("bench", "run", "--model", "tiny:llama", "--workload", "nope", "--out", out.toString());
    assertEquals(2, bad.exit());
  }
}
