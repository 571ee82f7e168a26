package io.kvasir.bench.serve;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.GenerationStats;
import io.kvasir.engine.ServeResult;
import io.kvasir.engine.StepTrace;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.perf.StepCost;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The figures of one serving run, as vLLM's serving benchmark defines them: throughput over the
 * run's wall time (from the call's start to its last token); TTFT from each request's arrival;
 * TPOT per request over the tokens after its first (requests of one token left out); ITL over
 * every gap between consecutive tokens of all requests; latency from arrival to the last token.
 *
 * <p>The roofline: each step must at least read the weights and the K and V it attends (full
 * attention) at the measured read bandwidth and, where the probe measured a GEMM rate, compute
 * its FLOPs ({@link StepCost}); the larger bound, summed over the steps the engine ran, is the
 * least time those steps could take. {@code fraction_of_roofline} is that time over the time
 * spent in steps: the efficiency of the steps, not of the scheduling that chose them.
 *
 * <p>Beside them: goodput under service-level objectives ({@link Slo}, null without), the paged
 * cache's peak use and the cache counters of the run ({@link ServeResult#kv()},
 * {@link ServeResult#counters()}).
 */
public record ServeReport(int completed, long promptTokens, long outputTokens, double wallSeconds,
    double busySeconds, LatencyStats ttftMillis, LatencyStats tpotMillis, LatencyStats itlMillis,
    LatencyStats latencyMillis, long steps, long preemptions, long prefixTokensQueried, long prefixTokensHit,
    Roof roofline, Slo.Goodput goodput, ServeResult.KvUsage kv, Map<String, Long> counters) {

  public ServeReport {
    kv = kv == null ? ServeResult.KvUsage.NONE : kv;
    counters = counters == null ? Map.of() : counters;
  }

  /**
   * The run's roofline.
   *
   * @param bandwidthSeconds the steps' bytes over the read bandwidth alone
   * @param seconds          per step the larger of the bandwidth and the GEMM bound, summed
   */
  public record Roof(double readBytesPerS, double gemmFlopsPerS, double bytes, double flops,
      double bandwidthSeconds, double seconds) {}

  public static ServeReport of(ServeResult run, StepCost cost, Roofline ceiling) {
    return of(run, cost, ceiling, null);
  }

  /** As {@link #of(ServeResult, StepCost, Roofline)}, with goodput under {@code slo} (null: none). */
  public static ServeReport of(ServeResult run, StepCost cost, Roofline ceiling, Slo slo) {
    List<GenerationResult> results = run.results();
    long prompt = 0;
    long output = 0;
    double[] ttft = new double[results.size()];
    double[] latency = new double[results.size()];
    List<Double> tpot = new ArrayList<>();
    int gaps = 0;
    for (GenerationResult r : results) {
      gaps += r.stats().interTokenMillis().length;
    }
    double[] itl = new double[gaps];
    int at = 0;
    for (int i = 0; i < results.size(); ++i) {
      GenerationStats s = results.get(i).stats();
      prompt += s.promptTokens();
      output += s.generatedTokens();
      ttft[i] = s.ttftMillis();
      latency[i] = s.latencyMillis();
      if (s.generatedTokens() > 1) {
        tpot.add(s.tpotMillis());
      }
      double[] g = s.interTokenMillis();
      System.arraycopy(g, 0, itl, at, g.length);
      at += g.length;
    }
    Roof roof = null;
    if (ceiling != null && cost != null && ceiling.readBytesPerS() > 0) {
      double bytes = 0;
      double flops = 0;
      double seconds = 0;
      for (StepTrace st : run.steps()) {
        bytes += cost.bytes(st);
        flops += cost.flops(st);
        seconds += cost.seconds(st, ceiling.readBytesPerS(), ceiling.gemmBf16FlopsPerS());
      }
      roof = new Roof(ceiling.readBytesPerS(), ceiling.gemmBf16FlopsPerS(), bytes, flops,
          bytes / ceiling.readBytesPerS(), seconds);
    }
    return new ServeReport(results.size(), prompt, output, run.wallMillis() / 1000, run.busyMillis() / 1000,
        LatencyStats.of(ttft), LatencyStats.of(tpot.stream().mapToDouble(Double::doubleValue).toArray()),
        LatencyStats.of(itl), LatencyStats.of(latency), run.steps().size(), run.preemptions(),
        run.prefixTokensQueried(), run.prefixTokensHit(), roof,
        slo == null ? null : slo.goodput(results, run.wallMillis() / 1000), run.kv(), run.counters());
  }

  public double requestsPerSecond() {
    return completed / wallSeconds;
  }

  public double outputTokensPerSecond() {
    return outputTokens / wallSeconds;
  }

  public double totalTokensPerSecond() {
    return (promptTokens + outputTokens) / wallSeconds;
  }

  /** Share of the queried prompt tokens found in the prefix cache; NaN when none were queried. */
  public double prefixHitRate() {
    return prefixTokensQueried > 0 ? (double) prefixTokensHit / prefixTokensQueried : Double.NaN;
  }

  /** Roofline time over time in steps (NaN without a roofline). */
  public double fractionOfRoofline() {
    return roofline == null ? Double.NaN : roofline.seconds() / busySeconds;
  }

  /** Writes the figures into {@code out} (the record's "results" object). */
  public void putJson(ObjectNode out) {
    out.put("completed", completed);
    out.put("prompt_tokens", promptTokens);
    out.put("output_tokens", outputTokens);
    out.put("duration_s", wallSeconds);
    out.put("busy_s", busySeconds);
    out.put("request_throughput_per_s", requestsPerSecond());
    out.put("output_tokens_per_s", outputTokensPerSecond());
    out.put("total_tokens_per_s", totalTokensPerSecond());
    putStats(out.putObject("ttft_ms"), ttftMillis);
    putStats(out.putObject("tpot_ms"), tpotMillis);
    putStats(out.putObject("itl_ms"), itlMillis);
    putStats(out.putObject("latency_ms"), latencyMillis);
    out.put("steps", steps);
    out.put("preemptions", preemptions);
    ObjectNode prefix = out.putObject("prefix_cache");
    prefix.put("queried_tokens", prefixTokensQueried);
    prefix.put("hit_tokens", prefixTokensHit);
    putNumber(prefix, "hit_rate", prefixHitRate());
    if (goodput == null) {
      out.putNull("goodput");
    } else {
      ObjectNode g = out.putObject("goodput");
      ObjectNode slo = g.putObject("slo");
      goodput.slo().asMap().forEach(slo::put);
      g.put("requests_met", goodput.requestsMet());
      putNumber(g, "fraction_met", goodput.fractionMet());
      putNumber(g, "requests_per_s", goodput.requestsPerSecond());
    }
    ObjectNode k = out.putObject("kv");
    k.put("peak_device_bytes", kv.peakBytes());
    k.put("peak_device_pages", kv.peakPagesUsed());
    k.put("peak_host_bytes", 0L);  // no policy places pages on the host yet
    k.put("device_capacity_bytes", kv.capacityBytes());
    k.put("device_pages", kv.pages());
    k.put("page_bytes", kv.pageBytes());
    k.put("page_tokens", kv.pageTokens());
    putNumber(k, "bytes_per_token", kv.bytesPerToken());
    ObjectNode c = out.putObject("policy_counters");
    counters.forEach(c::put);
    if (roofline != null) {
      ObjectNode r = out.putObject("roofline");
      r.put("model", "per step: weights + full-attention KV read at the read bandwidth, or FLOPs at the GEMM rate"
          + " when measured, whichever is larger; summed over the steps run");
      r.put("read_bytes_per_s", roofline.readBytesPerS());
      r.put("gemm_bf16_flops_per_s", roofline.gemmFlopsPerS());
      r.put("bytes", roofline.bytes());
      r.put("flops", roofline.flops());
      r.put("bandwidth_s", roofline.bandwidthSeconds());
      r.put("roofline_s", roofline.seconds());
      r.put("roofline_output_tokens_per_s", outputTokens / roofline.seconds());
      r.put("fraction_of_roofline", fractionOfRoofline());
    }
  }

  private static void putStats(ObjectNode o, LatencyStats s) {
    o.put("count", s.count());
    putNumber(o, "mean", s.mean());
    putNumber(o, "p50", s.p50());
    putNumber(o, "p90", s.p90());
    putNumber(o, "p99", s.p99());
    putNumber(o, "min", s.min());
    putNumber(o, "max", s.max());
  }

  // JSON has no NaN: an undefined figure is null.
  private static void putNumber(ObjectNode o, String name, double v) {
    if (Double.isFinite(v)) {
      o.put(name, v);
    } else {
      o.putNull(name);
    }
  }

  /** The summary as a text table (the command's output). */
  public String table(String title) {
    StringBuilder b = new StringBuilder();
    b.append("== ").append(title).append('\n');
    b.append(String.format(Locale.ROOT, "requests %d, prompt tokens %d, output tokens %d, duration %.2f s"
        + " (in steps %.2f s, %d steps, %d preemptions)%n", completed, promptTokens, outputTokens, wallSeconds,
        busySeconds, steps, preemptions));
    b.append(String.format(Locale.ROOT, "throughput: %.2f requests/s, %.1f output tokens/s, %.1f total tokens/s%n",
        requestsPerSecond(), outputTokensPerSecond(), totalTokensPerSecond()));
    b.append(String.format(Locale.ROOT, "%-12s %10s %10s %10s %10s%n", "ms", "mean", "p50", "p90", "p99"));
    row(b, "TTFT", ttftMillis);
    row(b, "TPOT", tpotMillis);
    row(b, "ITL", itlMillis);
    row(b, "latency", latencyMillis);
    if (prefixTokensQueried > 0) {
      b.append(String.format(Locale.ROOT, "prefix cache: %d of %d queried prompt tokens hit (%.1f%%)%n",
          prefixTokensHit, prefixTokensQueried, 100 * prefixHitRate()));
    }
    if (goodput != null) {
      b.append(String.format(Locale.ROOT, "goodput %s: %d of %d requests met (%.1f%%), %.2f requests/s%n",
          goodput.slo().asMap(), goodput.requestsMet(), goodput.requests(), 100 * goodput.fractionMet(),
          goodput.requestsPerSecond()));
    }
    if (kv.pages() > 0) {
      b.append(String.format(Locale.ROOT, "KV: peak %d of %d pages (%.1f MiB of %.1f MiB on the device)%n",
          kv.peakPagesUsed(), kv.pages(), kv.peakBytes() / 1048576.0, kv.capacityBytes() / 1048576.0));
    }
    if (roofline != null) {
      b.append(String.format(Locale.ROOT, "roofline: %.2f s for these steps (%.2f s by bandwidth alone) = %.1f output"
          + " tokens/s; steps at %.1f%% of it%n", roofline.seconds(), roofline.bandwidthSeconds(),
          outputTokens / roofline.seconds(), 100 * fractionOfRoofline()));
    }
    return b.toString();
  }

  private static void row(StringBuilder b, String name, LatencyStats s) {
    b.append(String.format(Locale.ROOT, "%-12s %10.2f %10.2f %10.2f %10.2f%n", name, s.mean(), s.p50(), s.p90(),
        s.p99()));
  }

  /** Requests whose samples a record keeps (the rest count in the figures only). */
  public static final int RAW_SAMPLES_CAP = 1024;

  /**
   * The record's per-request samples, capped at {@link #RAW_SAMPLES_CAP}, in milliseconds from the
   * start of the run: arrival (as scheduled, {@code arrivalMs[i]}), start (when the engine took the
   * request), TTFT, TPOT (null for one token), latency, prompt and output tokens.
   */
  public static void putSamples(ObjectNode raw, List<GenerationResult> results, double[] arrivalMs) {
    int n = Math.min(results.size(), RAW_SAMPLES_CAP);
    raw.put("count", n);
    raw.put("of", results.size());
    com.fasterxml.jackson.databind.node.ArrayNode arrival = raw.putArray("arrival_ms");
    com.fasterxml.jackson.databind.node.ArrayNode start = raw.putArray("start_ms");
    com.fasterxml.jackson.databind.node.ArrayNode ttft = raw.putArray("ttft_ms");
    com.fasterxml.jackson.databind.node.ArrayNode tpot = raw.putArray("tpot_ms");
    com.fasterxml.jackson.databind.node.ArrayNode latency = raw.putArray("latency_ms");
    com.fasterxml.jackson.databind.node.ArrayNode prompt = raw.putArray("prompt_tokens");
    com.fasterxml.jackson.databind.node.ArrayNode output = raw.putArray("output_tokens");
    for (int i = 0; i < n; ++i) {
      GenerationStats s = results.get(i).stats();
      arrival.add(roundMillis(arrivalMs[i]));
      start.add(roundMillis(s.arrivalMillis()));
      ttft.add(roundMillis(s.ttftMillis()));
      if (s.generatedTokens() > 1) {
        tpot.add(roundMillis(s.tpotMillis()));
      } else {
        tpot.addNull();
      }
      latency.add(roundMillis(s.latencyMillis()));
      prompt.add(s.promptTokens());
      output.add(s.generatedTokens());
    }
  }

  private static double roundMillis(double millis) {
    return Math.round(millis * 1000) / 1000.0;
  }
}
