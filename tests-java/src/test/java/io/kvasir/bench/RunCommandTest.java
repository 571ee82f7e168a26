package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.bench.serve.BenchWorkload;
import io.kvasir.bench.serve.Workload;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import io.kvasir.testing.CliRun;
import picocli.CommandLine;

/** {@code kvasir-bench run} on the tiny CPU model: records per (workload, policy), the summary, pp-tg. */
class RunCommandTest {
  private static final ObjectMapper JSON = new ObjectMapper();

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

  private static List<String> files(Path dir) throws Exception {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void twoPoliciesRunTheSameWorkloadsIntoTwoRecordsEach() throws Exception {
    Path out = tmp.resolve("out");
    CliRun r = run("run", "--model", "tiny:llama", "--policies", "full;quest:k=2", "--workload", "offline",
        "--workload", "online,rag", "--rates", "200", "--requests", "5", "--prompt-len", "8:30", "--output-len", "3:5",
        "--rag-docs", "2", "--rag-doc-len", "8", "--rag-pool", "3", "--rag-question-len", "4", "--max-batch", "2",
        "--page-tokens", "8", "--seed", "9", "--slo", "ttft_ms=100000,tpot_ms=100000", "--max-concurrency", "2",
        "--out", out.toString());
    assertEquals(0, r.exit(), r.err() + r.out());
    List<String> names = files(out);
    assertEquals(7, names.size(), names.toString());
    assertTrue(names.contains("summary.json"));
    JsonNode summary = JSON.readTree(out.resolve("summary.json").toFile());
    assertEquals("kvasir-bench-run/1", summary.get("record").asText());
    assertEquals(6, summary.get("records").size());
    String date = summary.get("date").asText();
    for (String w : List.of("offline", "online-r200", "rag")) {
      JsonNode full = JSON.readTree(out.resolve(date + "-" + w + "-full.json").toFile());
      JsonNode quest = JSON.readTree(out.resolve(date + "-" + w + "-quest-k-2.json").toFile());
      assertEquals(full.get("workload"), quest.get("workload"), w + ": the same workload under both policies");
      assertEquals("full", full.get("configuration").get("policy").asText());
      assertEquals("quest:k=2", quest.get("configuration").get("policy").asText());
      for (JsonNode rec : List.of(full, quest)) {
        assertEquals("kvasir-perf/1", rec.get("record").asText());
        assertEquals("serve", rec.get("topic").asText());
        JsonNode res = rec.get("results");
        assertEquals(5, res.get("completed").asInt(), w);
        assertEquals(rec.get("workload").get("output_tokens_total").asLong(), res.get("output_tokens").asLong(), w);
        JsonNode g = res.get("goodput");
        assertEquals(5, g.get("requests_met").asInt(), w);
        assertEquals(100000.0, g.get("slo").get("ttft_ms").asDouble());
        JsonNode kv = res.get("kv");
        assertTrue(kv.get("peak_device_pages").asInt() > 0, w);
        assertTrue(kv.get("peak_device_pages").asInt() <= kv.get("device_pages").asInt(), w);
        assertEquals(kv.get("peak_device_pages").asLong() * kv.get("page_bytes").asLong(),
            kv.get("peak_device_bytes").asLong());
        assertEquals(0, kv.get("peak_host_bytes").asLong());
        assertTrue(res.get("policy_counters").has("pages_recalled"), w);
        assertEquals(res.get("prefix_cache").get("queried_tokens").asLong(),
            res.get("policy_counters").get("prefix_tokens_queried").asLong(), w);
        assertEquals(5, rec.get("samples").get("tpot_ms").size());
        assertEquals(5, rec.get("samples").get("start_ms").size());
      }
    }
    // The online workload has the offline prompts (one seed rule); each workload starts cold, so
    // none of them comes from the prefix cache the offline run left behind.
    for (String policy : List.of("full", "quest-k-2")) {
      JsonNode res = JSON.readTree(out.resolve(date + "-online-r200-" + policy + ".json").toFile()).get("results");
      assertTrue(res.get("prefix_cache").get("queried_tokens").asLong() > 0, policy);
      assertEquals(0, res.get("prefix_cache").get("hit_tokens").asLong(), policy + ": a cold prefix cache");
    }
    JsonNode online = JSON.readTree(out.resolve(date + "-online-r200-full.json").toFile()).get("workload");
    assertEquals("online", online.get("name").asText());
    assertEquals(200.0, online.get("rate").asDouble());
    assertEquals(2, online.get("max_concurrency").asInt());
    assertEquals(9, online.get("seed").asLong());
    JsonNode rag = JSON.readTree(out.resolve(date + "-rag-full.json").toFile()).get("workload");
    assertEquals(2 * 8 + 4, rag.get("prompt_max").asInt());
    assertEquals(3, rag.get("rag").get("pool").asInt());
    JsonNode offline = JSON.readTree(out.resolve(date + "-offline-full.json").toFile());
    JsonNode samples = offline.get("samples");
    // At most two in flight (times are rounded to the microsecond: a request handed over at the
    // finish that freed its slot may seem to overlap it by that much).
    List<double[]> spans = new ArrayList<>();
    for (int i = 0; i < 5; ++i) {
      double start = samples.get("start_ms").get(i).asDouble();
      spans.add(new double[] {start, start + samples.get("latency_ms").get(i).asDouble()});
    }
    for (double[] a : spans) {
      int n = 0;
      for (double[] b : spans) {
        if (b[0] <= a[0] && b[1] > a[0] + 0.01) {
          ++n;
        }
      }
      assertTrue(n <= 2, n + " in flight at " + a[0] + " ms");
    }
  }

  @Test
  void ppTgWritesAMatrixWithDecodeAtTheFullBatch() throws Exception {
    Path out = tmp.resolve("pptg");
    CliRun r = run("run", "--model", "tiny:llama", "--policies", "full", "--workload", "pp-tg", "--pp", "16,40",
        "--tg", "17,33", "--tg-batch", "1,3", "--tg-tokens", "4", "--page-tokens", "8", "--max-batch", "2",
        "--max-step-tokens", "16", "--out", out.toString());
    assertEquals(0, r.exit(), r.err() + r.out());
    JsonNode summary = JSON.readTree(out.resolve("summary.json").toFile());
    JsonNode rec = JSON.readTree(out.resolve(summary.get("records").get(0).get("file").asText()).toFile());
    assertEquals("pp-tg", rec.get("topic").asText());
    assertEquals(3, rec.get("configuration").get("max_batch").asInt(), "sized for the largest tg batch");
    JsonNode m = rec.get("results").get("matrix");
    assertEquals(2 + 4, m.size());
    assertEquals("pp", m.get(1).get("test").asText());
    assertEquals(40, m.get(1).get("context").asInt());
    assertEquals(40, m.get(1).get("tokens").asInt());
    assertEquals(3, m.get(1).get("steps").asInt(), "40 tokens in chunks of 16");
    int row = 2;
    for (int c : new int[] {17, 33}) {
      for (int b : new int[] {1, 3}) {
        JsonNode t = m.get(row++);
        assertEquals("tg", t.get("test").asText());
        assertEquals(c, t.get("context").asInt());
        assertEquals(b, t.get("batch").asInt());
        // The context came from the prefix cache, so every step after the first decodes all b sequences.
        assertEquals(b, t.get("batch_mean").asDouble(), 1e-12, "context " + c + " batch " + b);
        assertTrue(t.get("steps").asInt() >= 3, t.toString());
        assertTrue(t.get("tokens_per_s").asDouble() > 0);
      }
    }
    assertTrue(rec.get("results").get("policy_counters").get("prefix_tokens_hit").asLong() > 0);
  }

  @Test
  void workloadDefaultsAndBadCommandLines() throws Exception {
    RunCommand cmd = new RunCommand();
    new CommandLine(cmd).parseArgs("--model", "tiny:llama", "--workload", "long-gen,offline", "--requests", "3",
        "--out", tmp.toString());
    RunCommand.Plan plan = cmd.plan();
    List<BenchWorkload> ws = cmd.requestWorkloads(plan, 100);
    assertEquals(List.of("long-gen", "offline"), ws.stream().map(BenchWorkload::name).toList());
    for (Workload.Request q : ws.get(0).requests()) {
      assertEquals(128, q.promptTokens());
      assertEquals(4096, q.outputTokens());
    }
    for (Workload.Request q : ws.get(1).requests()) {
      assertTrue(q.promptTokens() >= 1024 && q.promptTokens() <= 8192);
      assertEquals(256, q.outputTokens());
    }
    CliRun noRates = run("run", "--model", "tiny:llama", "--workload", "online", "--out", tmp.toString());
    assertEquals(2, noRates.exit());
    assertTrue(noRates.err().contains("--rates"), noRates.err());
    CliRun unknown = run("run", "--model", "tiny:llama", "--workload", "chat", "--out", tmp.toString());
    assertEquals(2, unknown.exit());
    assertTrue(unknown.err().contains("--workload chat"), unknown.err());
    CliRun policy = run("run", "--model", "tiny:llama", "--workload", "offline", "--policies", "full;;quest",
        "--out", tmp.toString());
    assertEquals(2, policy.exit());
    assertTrue(policy.err().contains("policy"), policy.err());
    assertEquals("kitty-boost-0.25-quest-k-64", RunRecords.slugOf("kitty:boost=0.25+quest:k=64"));
    assertEquals("kvasir-bench run --policies 'full;quest:k=64' --out d",
        RunCommand.command(List.of("bench", "run", "--policies", "full;quest:k=64", "--out", "d")));
  }
}
