package io.kvasir.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.bench.serve.BenchWorkload;
import io.kvasir.bench.serve.ServeReport;
import io.kvasir.engine.Engine;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.ServeResult;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.perf.PerfRecords;
import io.kvasir.policy.Policy;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The files of {@code kvasir-bench run}: one {@code kvasir-perf/1} record per (workload, policy),
 * named {@code <date>-<workload>-<policy-slug>.json}, and {@code summary.json}
 * ({@code kvasir-bench-run/1}); the schema is docs/benchmarks.md's "The record".
 */
final class RunRecords {
  /** The summary's format name and version. */
  static final String SUMMARY_FORMAT = "kvasir-bench-run/1";

  /** One line of the summary. */
  record Entry(String file, String workload, String workloadName, double rate, String policy, String slug,
      String error, String headline) {}

  private final ObjectMapper json = new ObjectMapper();
  private final Path dir;
  private final String date;
  private final String command;
  private final ModelOptions model;
  private final RunCommand run;
  private final List<Entry> entries = new ArrayList<>();
  private final Map<String, String> slugs = new HashMap<>();  // policy spec -> slug, unique per run
  private String modelName;

  private final RunCommand.Plan plan;

  /** Records of {@code plan} into {@code dir}; summary.json is rewritten after every record, so a run cut short keeps one. */
  RunRecords(Path dir, String date, String command, ModelOptions model, RunCommand run, RunCommand.Plan plan) {
    this.plan = plan;
    this.dir = dir;
    this.date = date;
    this.command = command;
    this.model = model;
    this.run = run;
  }

  /**
   * The policy's slug: the spec lower-cased, every run of characters outside {@code [a-z0-9.]}
   * one {@code -}, suffixed {@code -2}, {@code -3} when another spec of the run gave the same.
   */
  String slug(Policy policy) {
    String key = policy.spec() + (policy.prefixCache() ? "" : "|noprefix");
    return slugs.computeIfAbsent(key, k -> {
      String base = slugOf(policy.spec() + (policy.prefixCache() ? "" : "+no-prefix-cache"));
      String s = base;
      for (int i = 2; slugs.containsValue(s); ++i) {
        s = base + "-" + i;
      }
      return s;
    });
  }

  static String slugOf(String spec) {
    String s = spec.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9.]+", "-").replaceAll("^-+|-+$", "");
    return s.isEmpty() ? "policy" : s;
  }

  String fileName(String workloadLabel, Policy policy) {
    return date + "-" + workloadLabel + "-" + slug(policy) + ".json";
  }

  private ObjectNode header(String topic, Engine engine, Policy policy) {
    ObjectNode root = PerfRecords.header(json.createObjectNode(), topic, model.backend(), model.deviceIndex, command);
    root.put("date", date);
    modelName = engine.modelName();
    ObjectNode config = root.putObject("configuration");
    config.put("model", engine.modelName());
    config.put("dtype", engine.shape().weightDtype().name());
    config.put("device", model.deviceLabel());
    config.put("policy", policy.spec());
    config.put("policy_resolved", policy.resolved());
    config.put("prefix_cache", policy.prefixCache());
    config.put("kv_budget", run.kvBudget == null ? "the largest workload's need" : run.kvBudget);
    config.put("page_tokens", run.pageTokens);
    config.put("max_batch", engine.maxBatch());
    config.put("max_step_tokens", run.maxStepTokens);
    config.put("max_context", engine.maxContext());
    config.put("weight_bytes", engine.weightBytes());
    config.put("kv_bytes_per_token", engine.shape().kvBytesPerToken());
    config.put("kv_page_bytes", engine.kvPageBytes());
    config.put("kv_pages", engine.kvPages());
    return root;
  }

  private static void ceilings(ObjectNode root, Roofline ceiling) {
    if (ceiling != null) {
      ObjectNode c = root.putObject("ceilings");
      c.put("read_bytes_per_s", ceiling.readBytesPerS());
      c.put("copy_bytes_per_s", ceiling.copyBytesPerS());
      c.put("gemm_bf16_flops_per_s", ceiling.gemmBf16FlopsPerS());
    }
  }

  /** The workload section: the same for every policy of a run. */
  void putWorkload(ObjectNode w, BenchWorkload wl, RunCommand.Plan plan) {
    w.put("name", wl.name());
    w.put("seed", wl.seed());
    w.put("rule", wl.rule());
    w.put("requests", wl.requests().size());
    if (wl.offline()) {
      w.putNull("rate");
    } else {
      w.put("rate", wl.rate());
    }
    putNullable(w, "max_concurrency", run.maxConcurrency);
    w.put("prompt_min", wl.minPromptTokens());
    w.put("prompt_max", wl.maxPromptTokens());
    if (wl.minOutputTokens() == wl.maxOutputTokens()) {
      w.put("output_tokens", wl.maxOutputTokens());
    } else {
      w.putNull("output_tokens");
    }
    w.put("output_min", wl.minOutputTokens());
    w.put("output_max", wl.maxOutputTokens());
    w.put("lengths", wl.lengths());
    if (wl.lengthsFile() == null) {
      w.putNull("lengths_file");
    } else {
      w.put("lengths_file", wl.lengthsFile());
    }
    w.put("shared_prefix_tokens", wl.sharedPrefixTokens());
    if (wl.rag() == null) {
      w.putNull("rag");
    } else {
      ObjectNode r = w.putObject("rag");
      r.put("docs", wl.rag().docs());
      r.put("doc_tokens", wl.rag().docTokens());
      r.put("pool", wl.rag().pool());
      r.put("question_tokens", wl.rag().questionTokens());
    }
    w.put("ignore_eos", true);
    w.put("sampling", "greedy");
    w.put("warmup_requests", run.warmup);
    w.put("prompt_tokens", wl.promptTokens());
    w.put("output_tokens_total", wl.outputTokens());
    putSlo(w, plan);
  }

  private static void putSlo(ObjectNode w, RunCommand.Plan plan) {
    if (plan.slo() == null) {
      w.putNull("slo");
    } else {
      ObjectNode s = w.putObject("slo");
      plan.slo().asMap().forEach(s::put);
    }
  }

  void serve(Engine engine, Policy policy, RunCommand.Plan plan, BenchWorkload wl, Roofline ceiling,
      ServeReport report, ServeResult result) throws IOException {
    ObjectNode root = header("serve", engine, policy);
    putWorkload(root.putObject("workload"), wl, plan);
    ceilings(root, ceiling);
    ObjectNode res = root.putObject("results");
    report.putJson(res);
    ((ObjectNode) res.get("kv")).put("model_bytes_per_token", engine.shape().kvBytesPerToken());
    List<GenerationResult> rs = result.results();
    double[] scheduled = new double[rs.size()];
    for (int i = 0; i < scheduled.length; ++i) {
      scheduled[i] = wl.requests().get(i).arrivalSeconds() * 1000;
    }
    ServeReport.putSamples(root.putObject("samples"), rs, scheduled);
    String file = fileName(wl.label(), policy);
    json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve(file).toFile(), root);
    String headline = String.format(Locale.ROOT, "%.2f req/s, %.1f out tok/s, TTFT p50 %.1f ms, TPOT p50 %.2f ms,"
        + " peak KV %.1f MiB", report.requestsPerSecond(), report.outputTokensPerSecond(), report.ttftMillis().p50(),
        report.tpotMillis().p50(), report.kv().peakBytes() / 1048576.0);
    add(new Entry(file, wl.label(), wl.name(), wl.rate(), policy.spec(), slug(policy), null, headline));
  }

  void ppTg(Engine engine, Policy policy, RunCommand.Plan plan, PpTgRunner.Result r, Roofline ceiling)
      throws IOException {
    ObjectNode root = header("pp-tg", engine, policy);
    ObjectNode w = root.putObject("workload");
    w.put("name", "pp-tg");
    w.put("seed", run.seed);
    w.put("rule", "SplittableRandom(seed ^ 0x5050544700000000) split into pp and tg prompt streams (Workloads.ppTg)");
    ArrayNode ppList = w.putArray("pp");
    for (int v : run.pp) {
      ppList.add(v);
    }
    ArrayNode tgList = w.putArray("tg");
    for (int v : run.tg) {
      tgList.add(v);
    }
    ArrayNode batches = w.putArray("tg_batch");
    for (int v : run.tgBatch) {
      batches.add(v);
    }
    w.put("tg_tokens", run.tgTokens);
    w.put("ignore_eos", true);
    w.put("sampling", "greedy");
    w.put("warmup_requests", run.warmup);
    ceilings(root, ceiling);
    ObjectNode res = root.putObject("results");
    ArrayNode matrix = res.putArray("matrix");
    StringBuilder headline = new StringBuilder();
    for (PpTgRunner.Row row : r.rows()) {
      ObjectNode o = matrix.addObject();
      o.put("test", row.test());
      o.put("context", row.context());
      o.put("batch", row.batch());
      o.put("tokens", row.tokens());
      o.put("seconds", row.seconds());
      putNumber(o, "tokens_per_s", row.tokensPerSecond());
      o.put("steps", row.steps());
      putNumber(o, "batch_mean", row.batchMean());
      headline.append(String.format(Locale.ROOT, "%s%d%s %.0f tok/s; ", row.test(), row.context(),
          row.test().equals("tg") ? "x" + row.batch() : "", row.tokensPerSecond()));
    }
    ObjectNode k = res.putObject("kv");
    k.put("peak_device_bytes", r.kv().peakBytes());
    k.put("peak_device_pages", r.kv().peakPagesUsed());
    k.put("peak_host_bytes", 0L);
    k.put("device_capacity_bytes", r.kv().capacityBytes());
    k.put("device_pages", r.kv().pages());
    k.put("page_bytes", r.kv().pageBytes());
    k.put("page_tokens", r.kv().pageTokens());
    putNumber(k, "bytes_per_token", r.kv().bytesPerToken());
    k.put("model_bytes_per_token", engine.shape().kvBytesPerToken());
    ObjectNode c = res.putObject("policy_counters");
    r.counters().forEach(c::put);
    String file = fileName("pp-tg", policy);
    json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve(file).toFile(), root);
    add(new Entry(file, "pp-tg", "pp-tg", Double.POSITIVE_INFINITY, policy.spec(), slug(policy), null,
        headline.toString().strip()));
  }

  void failed(String label, String name, double rate, Policy policy, Exception e) {
    String msg = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    try {
      add(new Entry(null, label, name, rate, policy.spec(), slug(policy), msg, null));
    } catch (IOException io) {
      throw new java.io.UncheckedIOException(io);
    }
  }

  List<Entry> entries() {
    return List.copyOf(entries);
  }

  private void add(Entry e) throws IOException {
    entries.add(e);
    writeSummary();
  }

  void writeSummary() throws IOException {
    ObjectNode root = json.createObjectNode();
    root.put("record", SUMMARY_FORMAT);
    root.put("date", date);
    String commit = System.getenv("KVASIR_GIT_COMMIT");
    root.put("git_commit", commit == null || commit.isEmpty() ? "unknown" : commit);
    try {
      root.put("device", PerfRecords.deviceLine(model.backend(), model.deviceIndex));
    } catch (RuntimeException e) {
      root.put("device", model.device + ":" + model.deviceIndex);
    }
    root.put("library", io.kvasir.nativeapi.Kvasir.buildInfo());
    root.put("command", command);
    root.put("model", modelName != null ? modelName : model.model);
    ArrayNode ps = root.putArray("policies");
    plan.policies().forEach(p -> ps.add(p.spec()));
    ArrayNode ws = root.putArray("workloads");
    plan.workloads().forEach(ws::add);
    ArrayNode list = root.putArray("records");
    for (Entry e : entries) {
      ObjectNode o = list.addObject();
      if (e.file() == null) {
        o.putNull("file");
      } else {
        o.put("file", e.file());
      }
      o.put("workload", e.workload());
      o.put("workload_name", e.workloadName());
      if (Double.isInfinite(e.rate())) {
        o.putNull("rate");
      } else {
        o.put("rate", e.rate());
      }
      o.put("policy", e.policy());
      o.put("policy_slug", e.slug());
      o.put("status", e.error() == null ? "ok" : "failed");
      if (e.error() != null) {
        o.put("error", e.error());
      }
    }
    json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("summary.json").toFile(), root);
  }

  /** One line per (workload, policy) for stdout. */
  String table() {
    StringBuilder b = new StringBuilder();
    for (Entry e : entries) {
      b.append(String.format(Locale.ROOT, "%-16s %-24s %s%n", e.workload(), e.policy(),
          e.error() == null ? e.headline() : "FAILED: " + e.error()));
    }
    b.append("records and summary.json in ").append(dir).append('\n');
    return b.toString();
  }

  private static void putNullable(ObjectNode o, String name, Integer v) {
    if (v == null) {
      o.putNull(name);
    } else {
      o.put(name, v);
    }
  }

  private static void putNumber(ObjectNode o, String name, double v) {
    if (Double.isFinite(v)) {
      o.put(name, v);
    } else {
      o.putNull(name);
    }
  }
}
