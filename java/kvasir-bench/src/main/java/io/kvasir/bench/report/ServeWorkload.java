package io.kvasir.bench.report;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;

/**
 * The workload part of a serving record: what makes two runs comparable request for request.
 * Every field may be null when the record does not carry it.
 *
 * @param name         the workload's name where the runner gives one ({@code workload.name})
 * @param seed         the workload seed
 * @param requests     measured requests
 * @param promptMin    shortest prompt (tokens)
 * @param promptMax    longest prompt (tokens)
 * @param sharedPrefix tokens every prompt starts with
 * @param outputTokens tokens generated per request
 * @param rate         Poisson arrival rate (requests/s); null for offline (all at once)
 * @param promptTokens the prompts' total tokens
 */
public record ServeWorkload(String name, Long seed, Integer requests, Integer promptMin, Integer promptMax,
    Integer sharedPrefix, Integer outputTokens, Double rate, Long promptTokens) {

  /** Runs with equal keys ran the same requests at the same arrivals (on the same model). */
  String key(String model) {
    return sweepKey(model) + "|n=" + requests + "|rate=" + (rate == null ? "offline" : format(rate))
        + "|prompt_tokens=" + promptTokens;
  }

  /** Like {@link #key} without the rate and the request count: the points of one rate sweep. */
  String sweepKey(String model) {
    if (name != null && !name.isEmpty()) {
      // A named workload's rate points share the name's stem before "-r<rate>" (or the whole name).
      return model + "|" + name.replaceAll("-r[0-9.]+$", "");
    }
    return model + "|seed=" + seed + "|prompts=" + promptMin + "-" + promptMax + "|prefix=" + sharedPrefix
        + "|out=" + outputTokens;
  }

  boolean offline() {
    return rate == null;
  }

  /** A short description for table titles: {@code 64 requests, prompts 1024-8192 tokens, 256 out, offline}. */
  String describe() {
    return describe(true);
  }

  /** {@link #describe()} without the request count and the rate: what a rate sweep holds fixed. */
  String describeSweep() {
    return describe(false);
  }

  private String describe(boolean withRate) {
    List<String> parts = new ArrayList<>();
    if (name != null) {
      parts.add((withRate ? name : name.replaceAll("-r[0-9.]+$", "")) + ":");
    }
    if (withRate && requests != null) {
      parts.add(requests + " requests");
    }
    if (sharedPrefix != null && sharedPrefix > 0) {
      parts.add(sharedPrefix + "-token shared prefix +");
    }
    if (promptMin != null && promptMax != null) {
      parts.add("prompts " + promptMin + "-" + promptMax + " tokens");
    }
    if (outputTokens != null) {
      parts.add(outputTokens + " out");
    }
    if (withRate) {
      parts.add(rate == null ? "offline" : "Poisson " + format(rate) + " requests/s");
    }
    return String.join(", ", parts).replace(":,", ":").replace("+,", "+");
  }

  static String format(double rate) {
    return new BigDecimal(rate).round(new MathContext(4)).stripTrailingZeros().toPlainString();
  }
}
