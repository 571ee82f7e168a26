package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.bench.serve.Workload;
import io.kvasir.bench.serve.WorkloadSpec;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import io.kvasir.testing.CliRun;

/** {@code kvasir-bench serve} end to end on the tiny CPU model: the record, the exported workload, prefix caching. */
class ServeCommandTest {
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
  void onlineRunWritesARecordAndTheExactWorkload() throws Exception {
    Path record = tmp.resolve("serve.json");
    Path workload = tmp.resolve("workload.json");
    CliRun r = run("serve", "--model", "tiny:llama", "--requests", "9", "--subsample", "6", "--prompt-min", "5",
        "--prompt-max", "30", "--output-tokens", "4", "--rate", "400", "--max-batch", "3", "--page-tokens", "8",
        "--warmup", "2", "--seed", "5", "--roofline", "--slo", "ttft_ms=1e9", "--record", record.toString(), "--export-workload",
        workload.toString());
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("TTFT") && r.out().contains("output tokens/s"), r.out());
    JsonNode rec = new ObjectMapper().readTree(record.toFile());
    assertEquals("serve", rec.get("topic").asText());
    assertTrue(rec.get("command").asText().startsWith("kvasir-bench serve --model tiny:llama"));
    assertEquals("full", rec.get("configuration").get("policy").asText());
    assertTrue(rec.get("configuration").get("prefix_cache").asBoolean());
    assertEquals(34, rec.get("configuration").get("max_context").asInt());
    JsonNode w = rec.get("workload");
    assertEquals(5, w.get("seed").asLong());
    assertEquals(6, w.get("requests").asInt());
    assertEquals(400.0, w.get("rate").asDouble());
    JsonNode res = rec.get("results");
    assertEquals(6, res.get("completed").asInt());
    assertEquals(24, res.get("output_tokens").asInt());
    assertEquals(6, res.get("ttft_ms").get("count").asInt());
    assertEquals(6, res.get("tpot_ms").get("count").asInt());
    assertEquals(18, res.get("itl_ms").get("count").asInt());
    assertTrue(res.get("output_tokens_per_s").asDouble() > 0);
    assertTrue(res.get("ttft_ms").get("p99").asDouble() >= res.get("ttft_ms").get("p50").asDouble());
    assertTrue(res.get("roofline").get("roofline_s").asDouble() > 0);
    assertEquals(6, rec.get("samples").get("ttft_ms").size());
    assertEquals(6, res.get("goodput").get("requests_met").asInt());
    assertTrue(res.get("kv").get("peak_device_pages").asInt() > 0);
    assertTrue(res.get("policy_counters").has("reranks"));

    // The export is the workload's first 6 requests, regenerated here from the same rule.
    JsonNode exported = new ObjectMapper().readTree(workload.toFile());
    int vocab = exported.get("vocab_size").asInt();
    Workload want = Workload.generate(new WorkloadSpec(9, 5, 30, 4, 0, 400, 5, vocab)).first(6);
    assertEquals(6, exported.get("requests").size());
    long promptTokens = 0;
    for (int i = 0; i < 6; ++i) {
      JsonNode ids = exported.get("requests").get(i).get("prompt");
      int[] got = new int[ids.size()];
      for (int j = 0; j < got.length; ++j) {
        got[j] = ids.get(j).asInt();
      }
      assertArrayEquals(want.requests().get(i).prompt(), got, "request " + i);
      promptTokens += got.length;
      assertEquals(want.requests().get(i).arrivalSeconds(), rec.get("samples").get("arrival_ms").get(i).asDouble()
          / 1000, 1e-5);
    }
    assertEquals(promptTokens, res.get("prompt_tokens").asLong());
  }

  @Test
  void aSharedPrefixHitsThePrefixCacheUnlessItIsOff() throws Exception {
    // One sequence at a time: each request after the first finds the prefix's 3 full pages.
    String[] common = {"serve", "--model", "tiny:llama", "--requests", "5", "--shared-prefix", "24", "--prompt-min",
        "4", "--prompt-max", "8", "--output-tokens", "2", "--max-batch", "1", "--page-tokens", "8"};
    Path on = tmp.resolve("on.json");
    Path off = tmp.resolve("off.json");
    CliRun a = run(concat(common, "--record", on.toString()));
    assertEquals(0, a.exit(), a.err());
    CliRun b = run(concat(common, "--no-prefix-cache", "--record", off.toString()));
    assertEquals(0, b.exit(), b.err());
    JsonNode hit = new ObjectMapper().readTree(on.toFile()).get("results").get("prefix_cache");
    assertEquals(4 * 24, hit.get("hit_tokens").asLong());
    assertTrue(hit.get("hit_rate").asDouble() > 0.5, hit.toString());
    JsonNode none = new ObjectMapper().readTree(off.toFile()).get("results").get("prefix_cache");
    assertEquals(0, none.get("queried_tokens").asLong());
    assertTrue(none.get("hit_rate").isNull());
    assertTrue(!new ObjectMapper().readTree(off.toFile()).get("configuration").get("prefix_cache").asBoolean());
  }

  @Test
  void badCommandLinesAreRefusedWithTheReason() {
    CliRun rate = run("serve", "--model", "tiny:llama", "--rate", "0");
    assertEquals(2, rate.exit());
    assertTrue(rate.err().contains("--rate"), rate.err());
    CliRun policy = run("serve", "--model", "tiny:llama", "--policy", "nonsense");
    assertEquals(2, policy.exit());
    CliRun lengths = run("serve", "--model", "tiny:llama", "--prompt-min", "50", "--prompt-max", "10");
    assertEquals(2, lengths.exit());
    assertTrue(lengths.err().contains("prompt lengths"), lengths.err());
  }

  private static String[] concat(String[] a, String... b) {
    String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
