package io.kvasir.bench.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Accuracy grids: the JSON of {@code kvasir-bench eval --out} (an object with {@code results} of
 * {@code {task, length, count, correct, accuracy}}), or a wrapper whose {@code runs} are such
 * objects (docs/perf/2026-11-29-refeval-cpu.json); the wrapper's {@code command}, {@code device},
 * {@code date}, {@code git_commit} fill what a run lacks.
 */
final class EvalRecords {
  private static final Pattern TOKENS = Pattern.compile("^\\s*([0-9]+)\\s*tokens?\\s*$");

  private EvalRecords() {}

  static boolean isEval(JsonNode root) {
    return isGrid(root) || (root.path("runs").isArray() && root.path("runs").size() > 0
        && isGrid(root.path("runs").get(0)));
  }

  private static boolean isGrid(JsonNode o) {
    JsonNode r = o.path("results");
    return r.isArray() && r.size() > 0 && r.get(0).has("task") && r.get(0).has("accuracy");
  }

  static List<Run> read(Json json, JsonNode root) {
    if (isGrid(root)) {
      return List.of(grid(json, root, "", RunInfo.NONE));
    }
    RunInfo outer = RunInfo.of(json, root);
    JsonNode runs = json.array(root, "", "runs");
    List<Run> out = new ArrayList<>();
    for (int i = 0; i < runs.size(); ++i) {
      JsonNode r = runs.get(i);
      String path = "runs[" + i + "]";
      if (!r.isObject()) {
        throw json.error(path, "expected an object");
      }
      out.add(grid(json, r, path, outer));
    }
    return out;
  }

  private static EvalRun grid(Json json, JsonNode run, String path, RunInfo outer) {
    RunInfo info = new RunInfo(json.optText(run, path, "command"), json.optText(run, path, "device"),
        json.optText(run, path, "date"), json.optText(run, path, "git_commit")).orElse(outer);
    JsonNode results = json.array(run, path, "results");
    List<EvalRun.Cell> cells = new ArrayList<>();
    for (int i = 0; i < results.size(); ++i) {
      JsonNode c = results.get(i);
      String cp = Json.join(path, "results[" + i + "]");
      if (!c.isObject()) {
        throw json.error(cp, "expected an object");
      }
      double accuracy = json.number(c, cp, "accuracy");
      if (!(accuracy >= 0 && accuracy <= 1)) {
        throw json.error(cp + ".accuracy", "expected a fraction in [0, 1], found " + accuracy);
      }
      cells.add(new EvalRun.Cell(json.text(c, cp, "task"), (int) json.number(c, cp, "length"),
          (int) json.number(c, cp, "count"), ServeRecords.asInt(json.optNumber(c, cp, "correct")), accuracy));
    }
    return new EvalRun(json.file(), info, json.optText(run, path, "model"), json.optText(run, path, "policy"),
        budget(json, run, path), List.copyOf(cells));
  }

  /** {@code kv_budget_tokens} (a number), or {@code kv_budget} as {@code "N tokens"}; null otherwise. */
  private static Double budget(Json json, JsonNode run, String path) {
    Double tokens = json.optNumber(run, path, "kv_budget_tokens");
    if (tokens != null) {
      return tokens;
    }
    JsonNode b = run.get("kv_budget");
    if (b != null && b.isNumber()) {
      return b.doubleValue();
    }
    if (b != null && b.isTextual()) {
      Matcher m = TOKENS.matcher(b.asText());
      if (m.matches()) {
        return Double.parseDouble(m.group(1));
      }
    }
    return null;
  }
}
