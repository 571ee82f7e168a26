package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.bench.tasks.HfTokenCounter;
import io.kvasir.bench.tasks.Task;
import io.kvasir.bench.tasks.TaskGenerator;
import io.kvasir.bench.tasks.TaskRecord;
import io.kvasir.bench.tasks.Haystack;
import io.kvasir.engine.Engine;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code eval --export-records}: the records a peer needs to run the very prompts eval ran. */
class EvalExportRecordsTest {
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

  @Test
  void exportedRecordsAreTheEvaluatedOnesWithTheCellLength() throws Exception {
    Path json = tmp.resolve("eval.json");
    Path records = tmp.resolve("records.jsonl");
    Path haystack = BenchFixtures.haystack(tmp);
    CommandLine cli = BenchMain.commandLine();
    StringWriter err = new StringWriter();
    cli.setOut(new PrintWriter(new StringWriter()));
    cli.setErr(new PrintWriter(err));
    int exit = cli.execute("eval", "--model", "tiny:llama", "--task", "passkey,cwe", "--length", "1500", "--count", "2",
        "--seed", "4", "--haystack", haystack.toString(), "--batch", "2", "--out", json.toString(),
        "--export-records", records.toString());
    assertEquals(0, exit, err.toString());
    JsonNode eval = new ObjectMapper().readTree(json.toFile());
    List<String> lines = Files.readAllLines(records);
    assertEquals(4, lines.size());
    try (HfTokenCounter counter = HfTokenCounter.load(Engine.modelDirectory("tiny:llama"))) {
      TaskGenerator g = new TaskGenerator(Haystack.load(haystack), counter, null);
      for (int i = 0; i < lines.size(); ++i) {
        JsonNode line = new ObjectMapper().readTree(lines.get(i));
        assertEquals(1500, line.get("eval_length").asInt());
        JsonNode cell = eval.get("results").get(i / 2);
        assertEquals(cell.get("task").asText(), line.get("task").asText());
        assertEquals(cell.get("prompt_budget").asInt(), line.get("length").asInt());
        // The record reads back, and kvasir-bench tasks at the cell's budget makes the same one.
        TaskRecord r = TaskRecord.fromJson(lines.get(i));
        TaskRecord again = g.generate(Task.of(r.task()), r.seed(), r.length());
        assertEquals(again.toJson(), r.toJson());
        assertTrue(lines.get(i).endsWith(",\"eval_length\":1500}"), lines.get(i));
      }
    }
  }
}
