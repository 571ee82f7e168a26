package io.kvasir.bench.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Small records written by hand, with figures whose tables and ratios a test can work out, and the committed ones. */
final class ReportFixtures {
  static final ObjectMapper JSON = new ObjectMapper();

  private ReportFixtures() {}

  /**
   * A snapshot of real H200 records (docs/perf as of commit ba3ee0a), kept as test resources so
   * that re-measuring docs/perf never changes what these tests expect.
   */
  static Path docsPerf() {
    try {
      return Path.of(ReportFixtures.class.getResource("records/2026-11-29-kernels.json").toURI()).getParent();
    } catch (java.net.URISyntaxException | NullPointerException e) {
      throw new IllegalStateException("the record snapshot (test resources io/kvasir/bench/report/records) is missing", e);
    }
  }

  /** docs/perf of this checkout (surefire runs in tests-java; look upwards): every record must load. */
  static Path committedDocsPerf() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path p = dir.resolve("docs").resolve("perf");
      if (Files.isDirectory(p)) {
        return p;
      }
    }
    throw new IllegalStateException("docs/perf not found above " + Path.of("").toAbsolutePath());
  }

  /** A copy of the committed records ({@code *.json}) in {@code dir}. */
  static Path copyDocsPerf(Path dir) throws IOException {
    Files.createDirectories(dir);
    try (var s = Files.list(docsPerf())) {
      for (Path p : s.filter(f -> f.toString().endsWith(".json")).toList()) {
        Files.copy(p, dir.resolve(p.getFileName()));
      }
    }
    return dir;
  }

  /**
   * A serving record: {@code outTokPerS} output tokens/s, TTFT p99 {@code ttftP99} ms; samples of
   * three requests (TTFT 10, 20, 30 ms; latency 10 + 4 x 9, ...; 5 tokens each, so TPOT 9 ms).
   */
  static ObjectNode serve(String policy, Double rate, double outTokPerS, double ttftP99) {
    ObjectNode r = JSON.createObjectNode();
    r.put("record", "kvasir-perf/1").put("topic", "serve").put("date", "2026-11-30")
        .put("git_commit", "0123456789abcdef0123").put("device", "Test GPU, 1 MiB")
        .put("command", "kvasir-bench serve --policy " + policy);
    r.putObject("configuration").put("model", "synthetic:test").put("policy", policy)
        .put("policy_resolved", "bf16+" + policy).put("prefix_cache", true);
    ObjectNode w = r.putObject("workload").put("seed", 7).put("requests", 3).put("prompt_min", 100)
        .put("prompt_max", 200).put("shared_prefix_tokens", 0).put("output_tokens", 5).put("prompt_tokens", 450);
    if (rate == null) {
      w.putNull("rate");
    } else {
      w.put("rate", rate);
    }
    ObjectNode res = r.putObject("results").put("completed", 3).put("duration_s", 2.5)
        .put("request_throughput_per_s", 1.2).put("output_tokens_per_s", outTokPerS)
        .put("total_tokens_per_s", 10 * outTokPerS);
    res.putObject("ttft_ms").put("count", 3).put("mean", 20.0).put("p50", 20.0).put("p90", 28.0).put("p99", ttftP99);
    res.putObject("tpot_ms").put("count", 3).put("mean", 9.0).put("p50", 9.0).put("p90", 9.0).put("p99", 9.0);
    res.putObject("prefix_cache").put("queried_tokens", 400).put("hit_tokens", 100).put("hit_rate", 0.25);
    res.putObject("roofline").put("roofline_output_tokens_per_s", 4000.0).put("fraction_of_roofline", 0.5);
    ObjectNode s = r.putObject("samples").put("count", 3).put("of", 3);
    s.putArray("ttft_ms").add(10.0).add(20.0).add(30.0);
    s.putArray("latency_ms").add(46.0).add(56.0).add(66.0);
    s.putArray("output_tokens").add(5).add(5).add(5);
    return r;
  }

  static ObjectNode peer(int requests, long promptTokens, long outputTokens, double outTokPerS) {
    ObjectNode p = JSON.createObjectNode();
    p.put("record", "kvasir-peer/1").put("topic", "serve-offline-transformers").put("transformers", "9.9.9")
        .put("device", "Test GPU").put("workload", "w.json").put("workload_seed", 7).put("requests", requests)
        .put("prompt_tokens", promptTokens).put("output_tokens", outputTokens).put("time_s", 10.0)
        .put("output_tokens_per_s", outTokPerS).put("total_tokens_per_s", 5 * outTokPerS)
        .put("requests_per_s", 0.3);
    return p;
  }

  /** An eval record: one cell per (task, accuracy) pair at length 2048, 20 samples each. */
  static ObjectNode eval(String policy, Double budgetTokens, Object... taskAccuracy) {
    ObjectNode e = JSON.createObjectNode();
    e.put("model", "tiny-model").put("device", "cpu:0").put("policy", policy).put("date", "2026-11-30T10:00:00Z");
    if (budgetTokens != null) {
      e.put("kv_budget_tokens", budgetTokens);
    }
    ArrayNode results = e.putArray("results");
    for (int i = 0; i < taskAccuracy.length; i += 2) {
      double acc = (Double) taskAccuracy[i + 1];
      results.addObject().put("task", (String) taskAccuracy[i]).put("length", 2048).put("count", 20)
          .put("correct", (int) Math.round(acc * 20)).put("accuracy", acc);
    }
    return e;
  }

  /** Kernel JSON lines: paged_decode at two contexts and two kernels, against a 4000 GB/s read roofline. */
  static String kernelLines() {
    StringBuilder sb = new StringBuilder();
    String[] kernels = {"tc", "cc"};
    int[] ctx = {1024, 8192};
    for (String k : kernels) {
      for (int c : ctx) {
        double gbs = (k.equals("tc") ? 2000 : 1000) * (c == 1024 ? 1 : 1.5);
        sb.append(String.format(java.util.Locale.ROOT, "{\"op\": \"paged_decode\", \"backend\": \"cuda\", "
            + "\"kernel\": \"%s\", \"batch\": 1, \"ctx\": %d, \"hq\": 32, \"hkv\": 8, \"d\": 128, \"median_ms\": 0.05, "
            + "\"kv_bytes_per_s\": %.1f, \"read_roofline_bytes_per_s\": 4e12, \"fraction_of_roofline\": %.4f}%n",
            k, c, gbs * 1e9, gbs / 4000));
      }
    }
    return sb.toString();
  }

  static Path write(Path dir, String name, Object content) throws IOException {
    Files.createDirectories(dir);
    Path f = dir.resolve(name);
    if (content instanceof String s) {
      Files.writeString(f, s);
    } else {
      JSON.writerWithDefaultPrettyPrinter().writeValue(f.toFile(), content);
    }
    return f;
  }

  /** The markdown tables of a document: each a list of rows (header, separator, body), cells split on unescaped pipes. */
  static List<List<List<String>>> tables(String markdown) {
    List<List<List<String>>> out = new ArrayList<>();
    List<List<String>> current = null;
    for (String line : markdown.split("\n")) {
      if (line.startsWith("|")) {
        if (current == null) {
          current = new ArrayList<>();
          out.add(current);
        }
        current.add(cells(line));
      } else {
        current = null;
      }
    }
    return out;
  }

  static List<String> cells(String line) {
    assertTrue(line.startsWith("|") && line.endsWith("|"), "a table row starts and ends with a pipe: " + line);
    List<String> cells = new ArrayList<>();
    StringBuilder cell = new StringBuilder();
    for (int i = 1; i < line.length(); ++i) {
      char c = line.charAt(i);
      if (c == '\\' && i + 1 < line.length() && line.charAt(i + 1) == '|') {
        cell.append('|');
        ++i;
      } else if (c == '|') {
        cells.add(cell.toString().strip());
        cell.setLength(0);
      } else {
        cell.append(c);
      }
    }
    return cells;
  }

  /** Every table is well formed: a separator row of dashes, every row as wide as the header. */
  static void assertWellFormed(List<List<String>> table) {
    assertTrue(table.size() >= 2, "header and separator: " + table);
    int width = table.get(0).size();
    for (String sep : table.get(1)) {
      assertTrue(sep.matches(":?-{3,}:?"), "separator cell " + sep);
    }
    for (List<String> row : table) {
      assertEquals(width, row.size(), "row width: " + row + " in " + table.get(0));
    }
  }

  /** The body row whose first cell is {@code label}. */
  static List<String> row(List<List<String>> table, String label) {
    return table.stream().skip(2).filter(r -> r.get(0).equals(label)).findFirst()
        .orElseThrow(() -> new AssertionError("no row " + label + " in " + table));
  }
}
