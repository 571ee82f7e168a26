package io.kvasir.bench.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Serving records ({@code kvasir-perf/1}, topic {@code serve}; docs/benchmarks.md) and peer records
 * ({@code kvasir-peer/1}) as {@link ServeRun} and {@link PeerRun}. Figures are named once here so
 * that a peer's rows line up with Kvasir's. The fields of {@code kvasir-bench run} records
 * ({@code results.goodput}, {@code results.kv}, {@code results.policy_counters}, and the
 * {@code results.matrix} of topic {@code pp-tg}; docs/benchmarks.md) are read when present.
 */
final class ServeRecords {
  static final String COMPLETED = "requests completed";
  static final String DURATION = "duration (s)";
  static final String REQUESTS_PER_S = "requests/s";
  static final String OUTPUT_TOKENS_PER_S = "output tokens/s";
  static final String TOTAL_TOKENS_PER_S = "total tokens/s";
  static final String FRACTION_OF_ROOFLINE = "fraction of roofline (%)";
  static final String GOODPUT = "goodput (requests/s)";
  /** The topic of kvasir-bench run's llama-bench-like matrix records. */
  static final String PP_TG = "pp-tg";

  private static final String[] LATENCIES = {"ttft_ms", "TTFT", "tpot_ms", "TPOT", "itl_ms", "ITL", "latency_ms",
      "latency"};

  private ServeRecords() {}

  static ServeRun serve(Json json, JsonNode root) {
    JsonNode conf = json.object(root, "", "configuration");
    JsonNode work = json.object(root, "", "workload");
    JsonNode res = json.object(root, "", "results");
    String model = json.optText(conf, "configuration", "model");
    ServeWorkload workload = new ServeWorkload(json.optText(work, "workload", "name"),
        asLong(json.optNumber(work, "workload", "seed")), asInt(json.optNumber(work, "workload", "requests")),
        asInt(json.optNumber(work, "workload", "prompt_min")), asInt(json.optNumber(work, "workload", "prompt_max")),
        asInt(json.optNumber(work, "workload", "shared_prefix_tokens")),
        asInt(json.optNumber(work, "workload", "output_tokens")), asInt(json.optNumber(work, "workload", "output_min")),
        asInt(json.optNumber(work, "workload", "output_max")), rate(json, work),
        asLong(json.optNumber(work, "workload", "prompt_tokens")),
        asLong(json.optNumber(work, "workload", "output_tokens_total")));

    List<Figure> f = new ArrayList<>();
    // pp-tg records (kvasir-bench run) carry a matrix instead of request figures.
    boolean requests = !PP_TG.equals(json.optText(root, "", "topic"));
    add(f, COMPLETED, json.optNumber(res, "results", "completed"), null);
    add(f, DURATION, json.optNumber(res, "results", "duration_s"), false);
    add(f, REQUESTS_PER_S, requests ? (Double) json.number(res, "results", "request_throughput_per_s")
        : json.optNumber(res, "results", "request_throughput_per_s"), true);
    add(f, OUTPUT_TOKENS_PER_S, requests ? (Double) json.number(res, "results", "output_tokens_per_s")
        : json.optNumber(res, "results", "output_tokens_per_s"), true);
    add(f, TOTAL_TOKENS_PER_S, json.optNumber(res, "results", "total_tokens_per_s"), true);
    goodput(json, res, f);
    for (int i = 0; i < LATENCIES.length; i += 2) {
      JsonNode stats = requests && (LATENCIES[i].equals("ttft_ms") || LATENCIES[i].equals("tpot_ms"))
          ? json.object(res, "results", LATENCIES[i]) : json.optObject(res, "results", LATENCIES[i]);
      if (stats == null) {
        continue;
      }
      String path = "results." + LATENCIES[i];
      boolean few = LATENCIES[i].equals("itl_ms") || LATENCIES[i].equals("latency_ms");
      for (String p : few ? new String[] {"p50", "p99"} : new String[] {"mean", "p50", "p90", "p99"}) {
        add(f, LATENCIES[i + 1] + " " + p + " (ms)", json.optNumber(stats, path, p), false);
      }
    }
    JsonNode prefix = json.optObject(res, "results", "prefix_cache");
    if (prefix != null) {
      Double hit = json.optNumber(prefix, "results.prefix_cache", "hit_rate");
      add(f, "prefix cache hit rate (%)", hit == null ? null : 100 * hit, true);
    }
    JsonNode roof = json.optObject(res, "results", "roofline");
    if (roof != null) {
      add(f, "roofline output tokens/s", json.optNumber(roof, "results.roofline", "roofline_output_tokens_per_s"),
          null);
      Double frac = json.optNumber(roof, "results.roofline", "fraction_of_roofline");
      add(f, FRACTION_OF_ROOFLINE, frac == null ? null : 100 * frac, true);
    }
    add(f, "preemptions", json.optNumber(res, "results", "preemptions"), false);
    JsonNode kv = json.optObject(res, "results", "kv");
    if (kv != null) {
      leaves(f, "KV", kv, null);
    }
    JsonNode counters = json.optObject(res, "results", "policy_counters");
    if (counters != null) {
      leaves(f, "policy", counters, null);
    }

    List<Double> ttft = List.of();
    List<Double> tpot = List.of();
    JsonNode samples = json.optObject(root, "", "samples");
    if (samples != null) {
      List<Double> t = json.optNumbers(samples, "samples", "ttft_ms");
      ttft = t == null ? List.of() : t;
      // run writes null for a request of one output token (no TPOT): left out, as in tpot_ms.
      List<Double> tp = json.optNumbersSkippingNulls(samples, "samples", "tpot_ms");
      tpot = tp != null ? tp : tpotFrom(json, samples, ttft);
    }
    return new ServeRun(json.file(), RunInfo.of(json, root), model, json.optText(conf, "configuration", "policy"),
        json.optText(conf, "configuration", "policy_resolved"), json.optBoolean(conf, "configuration", "prefix_cache"),
        workload, List.copyOf(f), ttft, tpot, matrix(json, res));
  }

  static PeerRun peer(Json json, JsonNode root) {
    String topic = json.text(root, "", "topic");
    List<Figure> f = new ArrayList<>();
    Double requests = json.optNumber(root, "", "requests");
    add(f, COMPLETED, requests, null);
    add(f, DURATION, json.optNumber(root, "", "time_s"), false);
    add(f, REQUESTS_PER_S, json.optNumber(root, "", "requests_per_s"), true);
    add(f, OUTPUT_TOKENS_PER_S, json.number(root, "", "output_tokens_per_s"), true);
    add(f, TOTAL_TOKENS_PER_S, json.optNumber(root, "", "total_tokens_per_s"), true);
    String version = json.optText(root, "", "transformers");
    String peer = version != null ? "transformers " + version : topic;
    return new PeerRun(json.file(), RunInfo.of(json, root), topic, peer, json.optText(root, "", "workload"),
        asLong(json.optNumber(root, "", "workload_seed")), asInt(requests),
        asLong(json.optNumber(root, "", "prompt_tokens")), asLong(json.optNumber(root, "", "output_tokens")),
        List.copyOf(f));
  }

  /** TPOT per request from the samples: (latency - TTFT) / (output tokens - 1), requests of one token left out. */
  private static List<Double> tpotFrom(Json json, JsonNode samples, List<Double> ttft) {
    List<Double> latency = json.optNumbers(samples, "samples", "latency_ms");
    List<Double> out = json.optNumbers(samples, "samples", "output_tokens");
    if (latency == null || out == null || ttft.isEmpty()) {
      return List.of();
    }
    if (latency.size() != ttft.size() || out.size() != ttft.size()) {
      throw json.error("samples", "ttft_ms, latency_ms and output_tokens differ in length (" + ttft.size() + ", "
          + latency.size() + ", " + out.size() + ")");
    }
    List<Double> tpot = new ArrayList<>();
    for (int i = 0; i < ttft.size(); ++i) {
      if (out.get(i) > 1) {
        tpot.add((latency.get(i) - ttft.get(i)) / (out.get(i) - 1));
      }
    }
    return tpot;
  }

  /** {@code results.matrix}: rows of {phase pp|tg, context, batch, tokens_per_s}; a few spellings accepted. */
  private static List<ServeRun.MatrixRow> matrix(Json json, JsonNode res) {
    JsonNode m = res.get("matrix");
    if (m == null || m.isNull()) {
      return List.of();
    }
    if (!m.isArray()) {
      throw json.error("results.matrix", "expected an array of rows");
    }
    List<ServeRun.MatrixRow> rows = new ArrayList<>();
    for (int i = 0; i < m.size(); ++i) {
      JsonNode r = m.get(i);
      String path = "results.matrix[" + i + "]";
      if (!r.isObject()) {
        throw json.error(path, "expected an object");
      }
      String phase = firstText(json, r, path, "phase", "test", "kind", "mode");
      if (phase == null && (r.has("pp") || r.has("tg"))) {
        phase = r.has("pp") ? "pp" : "tg";
      }
      if (phase == null || !(phase.startsWith("pp") || phase.startsWith("tg"))) {
        throw json.error(path + ".phase", "expected pp or tg (fields phase, test, kind or mode), found " + phase);
      }
      Double context = firstNumber(json, r, path, "context", "ctx", "n_ctx", "depth");
      if (context == null) {
        throw json.error(path + ".context", "missing (fields context, ctx, n_ctx or depth)");
      }
      Double batch = firstNumber(json, r, path, "batch", "n_batch");
      Double speed = firstNumber(json, r, path, "tokens_per_s", "avg_ts");
      if (speed == null) {
        throw json.error(path + ".tokens_per_s", "missing");
      }
      rows.add(new ServeRun.MatrixRow(phase.substring(0, 2), context.intValue(), batch == null ? 1 : batch.intValue(),
          speed));
    }
    return List.copyOf(rows);
  }

  private static String firstText(Json json, JsonNode r, String path, String... names) {
    for (String n : names) {
      String s = json.optText(r, path, n);
      if (s != null) {
        return s;
      }
    }
    return null;
  }

  private static Double firstNumber(Json json, JsonNode r, String path, String... names) {
    for (String n : names) {
      Double d = json.optNumber(r, path, n);
      if (d != null) {
        return d;
      }
    }
    return null;
  }

  /** {@code workload.rate}: a number, or null / absent / "inf" for offline. */
  private static Double rate(Json json, JsonNode work) {
    JsonNode r = work.get("rate");
    if (r == null || r.isNull() || (r.isTextual() && r.asText().equalsIgnoreCase("inf"))) {
      return null;
    }
    if (!r.isNumber()) {
      throw json.error("workload.rate", "expected requests/s, null or \"inf\", found " + r);
    }
    return Double.isInfinite(r.doubleValue()) ? null : r.doubleValue();
  }

  /**
   * {@code results.goodput}: a number (requests/s), or run's {@code {slo, requests_met, fraction_met,
   * requests_per_s}}, named with its SLOs; null (no {@code --slo}) adds nothing.
   */
  private static void goodput(Json json, JsonNode res, List<Figure> f) {
    JsonNode g = res.get("goodput");
    if (g == null || g.isNull()) {
      return;
    }
    if (g.isNumber()) {
      add(f, GOODPUT, g.doubleValue(), true);
      return;
    }
    if (!g.isObject()) {
      throw json.error("results.goodput", "expected a number or an object");
    }
    List<String> slo = new ArrayList<>();
    JsonNode s = g.path("slo");
    s.fields().forEachRemaining(e -> slo.add(e.getKey() + " <= "
        + (e.getValue().isNumber() ? Fmt.num(e.getValue().doubleValue()) : e.getValue().asText())));
    String under = slo.isEmpty() ? "" : ", SLO " + String.join(", ", slo);
    add(f, "goodput (requests/s" + under + ")", json.optNumber(g, "results.goodput", "requests_per_s"), true);
    Double met = json.optNumber(g, "results.goodput", "fraction_met");
    add(f, "requests meeting the SLOs (%)", met == null ? null : 100 * met, true);
  }

  /**
   * The numeric leaves of an object the report does not know field by field, as "prefix: a.b"
   * figures; {@code *_bytes} in MiB.
   */
  private static void leaves(List<Figure> out, String prefix, JsonNode node, Boolean higherIsBetter) {
    Iterator<Map.Entry<String, JsonNode>> it = node.fields();
    while (it.hasNext()) {
      Map.Entry<String, JsonNode> e = it.next();
      JsonNode v = e.getValue();
      if (v.isNumber() && e.getKey().endsWith("_bytes")) {
        out.add(new Figure(prefix + ": " + e.getKey().replaceFirst("_bytes$", "") + " (MiB)",
            v.doubleValue() / (1 << 20), higherIsBetter));
      } else if (v.isNumber()) {
        out.add(new Figure(prefix + ": " + e.getKey(), v.doubleValue(), higherIsBetter));
      } else if (v.isObject()) {
        leaves(out, prefix + ": " + e.getKey(), v, higherIsBetter);
      }
    }
  }

  private static void add(List<Figure> out, String name, Double value, Boolean higherIsBetter) {
    if (value != null) {
      out.add(new Figure(name, value, higherIsBetter));
    }
  }

  static Integer asInt(Double d) {
    return d == null ? null : (int) Math.round(d);
  }

  static Long asLong(Double d) {
    return d == null ? null : Math.round(d);
  }
}
