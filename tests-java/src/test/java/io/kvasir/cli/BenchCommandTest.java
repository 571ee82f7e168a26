package io.kvasir.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code kvasir bench ...} forwards to the kvasir-bench commands with their options. */
class BenchCommandTest {
  private record Run(int exit, String out, String err) {}

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

  private static Run run(String... args) {
    CommandLine cli = KvasirCli.commandLine();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cli.setOut(new PrintWriter(out, true));
    cli.setErr(new PrintWriter(err, true));
    int exit = cli.execute(args);
    return new Run(exit, out.toString(), err.toString());
  }

  @Test
  void benchHelpListsTheBenchCommands() {
    Run r = run("bench", "--help");
    assertEquals(0, r.exit(), r.err());
    for (String c : new String[] {"Usage: kvasir bench", "run", "serve", "eval", "ppl", "tasks"}) {
      assertTrue(r.out().contains(c), "missing " + c + " in:\n" + r.out());
    }
    Run top = run("--help");
    assertTrue(top.out().contains("bench"), top.out());
    Run sub = run("bench", "run", "--help");
    assertEquals(0, sub.exit());
    assertTrue(sub.out().contains("--policies") && sub.out().contains("--max-concurrency"), sub.out());
  }

  @Test
  void benchRunWritesTheSameRecordsAsKvasirBench() throws Exception {
    Path out = tmp.resolve("out");
    Run r = run("bench", "run", "--model", "tiny:llama", "--workload", "offline", "--requests", "2", "--prompt-len",
        "6", "--output-len", "2", "--page-tokens", "8", "--out", out.toString());
    assertEquals(0, r.exit(), r.err() + r.out());
    JsonNode summary = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
    assertEquals("ok", summary.get("records").get(0).get("status").asText());
    assertTrue(summary.get("command").asText().startsWith("kvasir-bench run --model tiny:llama"),
        summary.get("command").asText());
    Run bad = run("bench", "run", "--model", "tiny:llama", "--workload", "nope", "--out", out.toString());
    assertEquals(2, bad.exit());
  }
}
