package io.kvasir.bench.report;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads one record file into runs, recognizing its format by its fields:
 * <ul>
 *   <li>{@code "record": "kvasir-perf/1"} with {@code "topic": "serve"} or {@code "pp-tg"}: a serving run
 *       ({@link ServeRecords});</li>
 *   <li>{@code "record": "kvasir-perf/1"} with a {@code figures} array: kernel or decode figures against their
 *       rooflines ({@link KernelRecords});</li>
 *   <li>{@code "record": "kvasir-peer/1"}: a peer's run of an exported workload;</li>
 *   <li>an object with {@code results} of {@code {task, length, accuracy}} (or {@code runs} of such objects):
 *       accuracy grids of {@code kvasir-bench eval --out};</li>
 *   <li>JSON lines whose every object has {@code op} and {@code median_ms}: kernel figures.</li>
 * </ul>
 * Anything else is an {@link UnrecognizedRecordException}; a recognized file missing a field it
 * needs is a {@link RecordException} naming the field.
 */
public final class RecordLoader {
  private static final ObjectMapper JSON =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  private RecordLoader() {}

  public static List<Run> load(Path file) {
    String text;
    try {
      text = Files.readString(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new RecordException(file, "cannot read: " + e.getMessage(), e);
    }
    Json json = new Json(file);
    JsonNode root;
    try {
      root = JSON.readTree(text);
    } catch (JsonProcessingException whole) {
      List<JsonNode> lines = jsonLines(file, text);
      if (lines == null) {
        throw new RecordException(file, "not JSON: " + whole.getOriginalMessage() + " (line "
            + whole.getLocation().getLineNr() + ", column " + whole.getLocation().getColumnNr() + ")", whole);
      }
      return List.of(KernelRecords.fromLines(json, lines));
    }
    if (root == null || !root.isObject()) {
      throw new UnrecognizedRecordException(file, "not a record: expected a JSON object or JSON lines of objects");
    }
    JsonNode record = root.get("record");
    if (record != null && !record.isNull()) {
      String name = record.asText();
      switch (name) {
        case "kvasir-perf/1" -> {
          String topic = json.optText(root, "", "topic");
          if ("serve".equals(topic) || ServeRecords.PP_TG.equals(topic)) {
            return List.of(ServeRecords.serve(json, root));
          }
          if (FidelityRecords.TOPIC.equals(topic)) {
            return List.of(FidelityRecords.read(json, root));
          }
          if (root.has("figures")) {
            return List.of(KernelRecords.fromFigures(json, root));
          }
          throw new UnrecognizedRecordException(file, "kvasir-perf/1 record of topic '" + topic
              + "' is neither a serving run (topic serve) nor fidelity, nor has 'figures'");
        }
        case "kvasir-peer/1" -> {
          return List.of(ServeRecords.peer(json, root));
        }
        default -> throw new UnrecognizedRecordException(file, "unknown record format '" + name
            + "' (known: kvasir-perf/1, kvasir-peer/1, eval results, kernel JSON lines)");
      }
    }
    if (EvalRecords.isEval(root)) {
      return EvalRecords.read(json, root);
    }
    if (root.has("op") && root.has("median_ms")) {
      return List.of(KernelRecords.fromLines(json, List.of(root)));
    }
    throw new UnrecognizedRecordException(file, "not a record this report reads: no 'record' field, no eval"
        + " 'results' of {task, length, accuracy}, not kernel JSON lines of {op, median_ms}");
  }

  /**
   * The file as JSON lines when its first non-blank line is a JSON object by itself; null when it
   * is not JSON lines at all. A later line that is not JSON is an error naming the line.
   */
  private static List<JsonNode> jsonLines(Path file, String text) {
    String[] lines = text.split("\r?\n");
    List<JsonNode> out = new ArrayList<>();
    for (int i = 0; i < lines.length; ++i) {
      String line = lines[i].strip();
      if (line.isEmpty()) {
        continue;
      }
      JsonNode n;
      try {
        n = JSON.readTree(line);
      } catch (JsonProcessingException e) {
        if (out.isEmpty()) {
          return null;
        }
        throw new RecordException(file, "line " + (i + 1) + ": not JSON: " + e.getOriginalMessage(), e);
      }
      if (n == null || !n.isObject()) {
        if (out.isEmpty()) {
          return null;
        }
        throw new RecordException(file, "line " + (i + 1) + ": expected a JSON object");
      }
      out.add(n);
    }
    return out.isEmpty() ? null : out;
  }
}
