package io.kvasir.bench.serve;

import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.GenerationStats;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Service-level objectives of goodput, as {@code vllm bench serve --goodput}: a request is good
 * when every objective given holds ({@code value <= objective}, milliseconds). A request of one
 * output token has no TPOT and counts as 0 for it (vLLM's rule). Null objectives are not checked.
 *
 * @param ttftMillis time to first token
 * @param tpotMillis time per output token after the first
 * @param e2elMillis end-to-end latency
 */
public record Slo(Double ttftMillis, Double tpotMillis, Double e2elMillis) {
  public Slo {
    for (Double v : new Double[] {ttftMillis, tpotMillis, e2elMillis}) {
      if (v != null && !(v > 0 && Double.isFinite(v))) {
        throw new IllegalArgumentException("an SLO of " + v + " ms must be finite and > 0");
      }
    }
    if (ttftMillis == null && tpotMillis == null && e2elMillis == null) {
      throw new IllegalArgumentException("an SLO needs at least one of ttft_ms, tpot_ms, e2el_ms");
    }
  }

  /** The goodput of a run: requests meeting every objective, and those over the duration. */
  public record Goodput(Slo slo, int requestsMet, int requests, double requestsPerSecond) {
    public double fractionMet() {
      return requests > 0 ? (double) requestsMet / requests : Double.NaN;
    }
  }

  /**
   * Parses {@code ttft_ms=2000,tpot_ms=100,e2el_ms=20000} (any non-empty subset).
   *
   * @throws IllegalArgumentException naming the unknown key or bad value
   */
  public static Slo parse(String text) {
    Double ttft = null;
    Double tpot = null;
    Double e2el = null;
    for (String part : text.split(",")) {
      String p = part.strip();
      int eq = p.indexOf('=');
      if (eq < 0) {
        throw new IllegalArgumentException("--slo " + text + ": \"" + p + "\" is not name=milliseconds");
      }
      String key = p.substring(0, eq).strip().toLowerCase(Locale.ROOT);
      double v;
      try {
        v = Double.parseDouble(p.substring(eq + 1).strip());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--slo " + text + ": " + key + " needs a number of milliseconds");
      }
      switch (key) {
        case "ttft_ms", "ttft" -> ttft = v;
        case "tpot_ms", "tpot" -> tpot = v;
        case "e2el_ms", "e2el", "latency_ms" -> e2el = v;
        default -> throw new IllegalArgumentException("--slo " + text + ": unknown objective " + key
            + " (ttft_ms, tpot_ms, e2el_ms)");
      }
    }
    return new Slo(ttft, tpot, e2el);
  }

  /** Whether one request meets every objective. */
  public boolean met(GenerationStats s) {
    double tpot = s.generatedTokens() > 1 ? s.tpotMillis() : 0;
    return (ttftMillis == null || s.ttftMillis() <= ttftMillis)
        && (tpotMillis == null || tpot <= tpotMillis)
        && (e2elMillis == null || s.latencyMillis() <= e2elMillis);
  }

  /** Goodput of {@code results} over {@code durationSeconds}. */
  public Goodput goodput(List<GenerationResult> results, double durationSeconds) {
    int good = 0;
    for (GenerationResult r : results) {
      if (met(r.stats())) {
        ++good;
      }
    }
    return new Goodput(this, good, results.size(), good / durationSeconds);
  }

  /** The objectives given, by their record names. */
  public Map<String, Double> asMap() {
    Map<String, Double> m = new LinkedHashMap<>();
    if (ttftMillis != null) {
      m.put("ttft_ms", ttftMillis);
    }
    if (tpotMillis != null) {
      m.put("tpot_ms", tpotMillis);
    }
    if (e2elMillis != null) {
      m.put("e2el_ms", e2elMillis);
    }
    return m;
  }
}
