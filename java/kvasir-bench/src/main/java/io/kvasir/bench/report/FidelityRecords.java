package io.kvasir.bench.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/** Reads {@code kvasir-perf/1} records of topic {@code fidelity} (docs/fidelity.md). */
final class FidelityRecords {
  static final String TOPIC = "fidelity";

  private FidelityRecords() {}

  static FidelityRun read(Json json, JsonNode root) {
    JsonNode config = json.object(root, "", "configuration");
    JsonNode results = json.array(root, "", "results");
    List<FidelityRun.Row> rows = new ArrayList<>();
    for (int i = 0; i < results.size(); ++i) {
      JsonNode r = results.get(i);
      String at = "results[" + i + "]";
      JsonNode kl = json.object(r, at, "kl_nats");
      JsonNode div = json.object(r, at, "first_divergence");
      rows.add(new FidelityRun.Row(json.text(r, at, "policy"), json.text(r, at, "group"),
          (int) json.number(r, at, "prompts"), (long) json.number(r, at, "steps"), json.number(kl, at + ".kl_nats", "mean"),
          json.number(kl, at + ".kl_nats", "p50"), json.number(kl, at + ".kl_nats", "p90"),
          json.number(kl, at + ".kl_nats", "max"), json.number(r, at, "top1_agreement"),
          json.number(r, at, "token_agreement"), json.number(div, at + ".first_divergence", "median"),
          json.number(div, at + ".first_divergence", "min")));
    }
    return new FidelityRun(json.file(), RunInfo.of(json, root), json.text(config, "configuration", "model"),
        json.text(config, "configuration", "baseline"), (int) json.number(config, "configuration", "tokens"), rows);
  }
}
