package io.kvasir.bench.report;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Serving runs grouped by workload (same model, requests, arrivals: {@link ServeWorkload#key}),
 * with the peer runs that ran the same requests. A peer matches an offline group when its seed,
 * request count, prompt tokens and output tokens (requests x output tokens each) equal the
 * group's; a peer that matches none gets a group of its own.
 *
 * @param title     what the runs ran
 * @param runs      Kvasir's runs, one column each
 * @param peers     peers' runs of the same requests
 * @param peerMatch how the peers were matched, for the caption; null without peers
 */
record ServeGroups(String title, String model, List<ServeRun> runs, List<PeerRun> peers, String peerMatch) {

  static List<ServeGroups> of(List<ServeRun> serve, List<PeerRun> peers) {
    Map<String, List<ServeRun>> byKey = new LinkedHashMap<>();
    for (ServeRun r : serve) {
      byKey.computeIfAbsent(r.workload().key(r.model()), k -> new ArrayList<>()).add(r);
    }
    Map<String, List<PeerRun>> matched = new LinkedHashMap<>();
    List<PeerRun> unmatched = new ArrayList<>();
    for (PeerRun p : peers) {
      String key = null;
      for (Map.Entry<String, List<ServeRun>> e : byKey.entrySet()) {
        if (matches(p, e.getValue().get(0))) {
          key = e.getKey();
          break;
        }
      }
      if (key == null) {
        unmatched.add(p);
      } else {
        matched.computeIfAbsent(key, k -> new ArrayList<>()).add(p);
      }
    }
    List<ServeGroups> out = new ArrayList<>();
    for (Map.Entry<String, List<ServeRun>> e : byKey.entrySet()) {
      ServeRun first = e.getValue().get(0);
      List<PeerRun> ps = matched.getOrDefault(e.getKey(), List.of());
      String match = null;
      if (!ps.isEmpty()) {
        ServeWorkload w = first.workload();
        match = "peers matched on workload seed " + w.seed() + ", " + w.requests() + " requests, " + w.promptTokens()
            + " prompt tokens, " + outputTotal(w) + " output tokens, all at once";
      }
      out.add(new ServeGroups(first.workload().describe(), first.model(), List.copyOf(e.getValue()), List.copyOf(ps),
          match));
    }
    for (PeerRun p : unmatched) {
      out.add(new ServeGroups(p.topic() + " (" + p.requests() + " requests; no Kvasir run of the same requests)",
          null, List.of(), List.of(p), "unmatched: no Kvasir run has this peer's seed, request count and token counts"));
    }
    return out;
  }

  /** Whether a peer ran {@code run}'s requests: offline, same seed, requests, prompt and output tokens. */
  static boolean matches(PeerRun p, ServeRun run) {
    ServeWorkload w = run.workload();
    Long output = outputTotal(w);
    if (!w.offline() || w.requests() == null || output == null) {
      return false;
    }
    return Objects.equals(p.seed(), w.seed()) && Objects.equals(p.requests(), w.requests())
        && Objects.equals(p.promptTokens(), w.promptTokens()) && Objects.equals(p.outputTokens(), output);
  }

  /** The requests' output tokens: recorded, or requests x the fixed output length. */
  static Long outputTotal(ServeWorkload w) {
    if (w.outputTokensTotal() != null) {
      return w.outputTokensTotal();
    }
    return w.requests() == null || w.outputTokens() == null ? null : (long) w.requests() * w.outputTokens();
  }

  /** Column labels, one per run then per peer, made unique (resolved policy, then file name). */
  List<String> labels() {
    List<String> labels = new ArrayList<>();
    for (ServeRun r : runs) {
      labels.add(r.label());
    }
    for (PeerRun p : peers) {
      labels.add(p.label());
    }
    return unique(labels, i -> i < runs.size() && runs.get(i).policyResolved() != null
        ? runs.get(i).policyResolved() : null, i -> i < runs.size() ? runs.get(i).fileName()
        : peers.get(i - runs.size()).fileName());
  }

  /** Each run's figures, then each peer's, in column order. */
  List<List<Figure>> figures() {
    List<List<Figure>> out = new ArrayList<>();
    runs.forEach(r -> out.add(r.figures()));
    peers.forEach(p -> out.add(p.figures()));
    return out;
  }

  /**
   * Makes duplicate labels unique: a duplicate gets its {@code second} name in parentheses, and
   * if that still repeats (or there is none), its {@code third}.
   */
  static List<String> unique(List<String> labels, java.util.function.IntFunction<String> second,
      java.util.function.IntFunction<String> third) {
    List<String> out = new ArrayList<>(labels);
    for (int pass = 0; pass < 2; ++pass) {
      Map<String, Integer> counts = new LinkedHashMap<>();
      out.forEach(l -> counts.merge(l, 1, Integer::sum));
      for (int i = 0; i < out.size(); ++i) {
        if (counts.get(out.get(i)) > 1) {
          String extra = pass == 0 ? second.apply(i) : third.apply(i);
          if (pass == 0 && extra == null) {
            extra = third.apply(i);
          }
          out.set(i, labels.get(i) + " (" + extra + ")");
        }
      }
    }
    return out;
  }
}
