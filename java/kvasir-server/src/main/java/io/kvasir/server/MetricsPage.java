package io.kvasir.server;

import io.kvasir.engine.LoopMetrics;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code GET /metrics}: an {@link LoopMetrics} snapshot in Prometheus text, under vLLM's metric
 * names with the {@code kvasir:} prefix (docs/server.md lists them).
 */
final class MetricsPage {
  private MetricsPage() {}

  static String render(LoopMetrics m, String modelId) {
    PrometheusText out = new PrometheusText();
    String model = PrometheusText.label("model_name", modelId);
    gauge(out, "kvasir:num_requests_running", "Sequences in the running batch.", model, m.running());
    gauge(out, "kvasir:num_requests_waiting", "Requests queued, not yet admitted.", model, m.waiting());
    out.header("kvasir:kv_cache_usage_perc", "gauge", "Fraction of KV-cache pages in use, per memory tier (0..1).");
    out.sample("kvasir:kv_cache_usage_perc", model + "," + PrometheusText.label("tier", "device"),
        fraction(m.kvPagesUsedDevice(), m.kvPagesTotalDevice()));
    out.sample("kvasir:kv_cache_usage_perc", model + "," + PrometheusText.label("tier", "host"),
        fraction(m.kvPagesUsedHost(), m.kvPagesTotalHost()));
    out.header("kvasir:kv_cache_pages", "gauge", "KV-cache pages per memory tier and state.");
    out.sample("kvasir:kv_cache_pages", model + ",tier=\"device\",state=\"used\"", m.kvPagesUsedDevice());
    out.sample("kvasir:kv_cache_pages", model + ",tier=\"device\",state=\"total\"", m.kvPagesTotalDevice());
    out.sample("kvasir:kv_cache_pages", model + ",tier=\"host\",state=\"used\"", m.kvPagesUsedHost());
    out.sample("kvasir:kv_cache_pages", model + ",tier=\"host\",state=\"total\"", m.kvPagesTotalHost());
    counter(out, "kvasir:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", model,
        m.prefixTokensQueried());
    counter(out, "kvasir:prefix_cache_hits_total", "Prompt tokens whose KV came from the prefix cache.", model,
        m.prefixTokensHit());
    counter(out, "kvasir:num_preemptions_total", "Sequences preempted to free KV pages.", model, m.preemptions());
    counter(out, "kvasir:prompt_tokens_total", "Prompt tokens of finished samples.", model, m.promptTokens());
    counter(out, "kvasir:generation_tokens_total", "Tokens generated.", model, m.generationTokens());
    out.header("kvasir:request_success_total", "counter", "Samples that ended, by how.");
    out.sample("kvasir:request_success_total", model + ",finished_reason=\"finished\"", m.requestsFinished());
    out.sample("kvasir:request_success_total", model + ",finished_reason=\"abort\"", m.requestsCancelled());
    counter(out, "kvasir:request_failure_total", "Requests that failed in the engine.", model, m.requestsFailed());
    histogram(out, "kvasir:time_to_first_token_seconds", "Seconds from submit to the first token.", model, m.ttft());
    histogram(out, "kvasir:inter_token_latency_seconds", "Seconds between consecutive tokens.", model,
        m.interToken());
    histogram(out, "kvasir:e2e_request_latency_seconds", "Seconds from submit to the last token.", model, m.e2e());
    for (Map.Entry<String, Long> c : new TreeMap<>(m.counters()).entrySet()) {
      counter(out, "kvasir:policy_" + metricName(c.getKey()) + "_total", "Cache policy counter " + c.getKey() + ".",
          model, c.getValue());
    }
    return out.toString();
  }

  /** A counter name as a Prometheus name fragment: {@code [a-z0-9_]}, no {@code _total} twice. */
  static String metricName(String raw) {
    String s = raw.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9_]+", "_").replaceAll("^_+|_+$", "");
    return s.endsWith("_total") ? s.substring(0, s.length() - "_total".length()) : s;
  }

  private static double fraction(long used, long total) {
    return total > 0 ? (double) used / total : 0;
  }

  private static void gauge(PrometheusText out, String name, String help, String labels, double v) {
    out.header(name, "gauge", help);
    out.sample(name, labels, v);
  }

  private static void counter(PrometheusText out, String name, String help, String labels, double v) {
    out.header(name, "counter", help);
    out.sample(name, labels, v);
  }

  private static void histogram(PrometheusText out, String name, String help, String labels, LoopMetrics.Histogram h) {
    out.header(name, "histogram", help);
    double[] bounds = h.boundsSeconds();
    long[] cumulative = h.cumulativeCounts();
    for (int i = 0; i < bounds.length; ++i) {
      out.sample(name + "_bucket", labels + ",le=\"" + PrometheusText.number(bounds[i]) + "\"", cumulative[i]);
    }
    out.sample(name + "_bucket", labels + ",le=\"+Inf\"", cumulative[bounds.length]);
    out.sample(name + "_sum", labels, h.sumSeconds());
    out.sample(name + "_count", labels, h.count());
  }
}
