package io.kvasir.bench.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Kernel figures: the JSON lines of {@code tests-native/bench_paged_*} and the torch peer scripts,
 * and the {@code figures} of {@code kvasir-perf/1} records ({@code bench_ops}, decode records).
 * Each figure keeps the roofline it names ({@code roofline}, or {@code read} where the line gives
 * {@code read_roofline_bytes_per_s}) and its recorded {@code fraction_of_roofline}; nothing is
 * recomputed, and a figure that names no roofline shows none.
 */
final class KernelRecords {
  /** Shape fields, in the order tables print them. */
  private static final String[] SHAPE = {"dtype", "batch", "ctx", "q_len", "kv_len", "hq", "hkv", "d", "page_tokens",
      "top_k", "causal", "prompt_tokens", "generated_tokens"};
  private static final Pattern CONTEXT = Pattern.compile("(?:^|,)(?:kv_len|ctx|len)=([0-9]+)");
  private static final Pattern BATCH = Pattern.compile("(?:^|,)(?:batch|b)=([0-9]+)");

  private KernelRecords() {}

  static KernelRun fromLines(Json json, List<JsonNode> lines) {
    if (!lines.get(0).has("op") || !lines.get(0).has("median_ms")) {
      throw new UnrecognizedRecordException(json.file(), "JSON lines without 'op' and 'median_ms': not kernel figures");
    }
    List<KernelRun.Row> rows = new ArrayList<>();
    String device = null;
    for (int i = 0; i < lines.size(); ++i) {
      String path = "line " + (i + 1);
      rows.add(row(json, lines.get(i), path, null, null));
      if (device == null) {
        device = json.optText(lines.get(i), path, "device");
      }
    }
    String name = json.file().getFileName().toString().replaceFirst("\\.jsonl?$", "");
    return new KernelRun(json.file(), new RunInfo(null, device, null, null), name, List.copyOf(rows));
  }

  static KernelRun fromFigures(Json json, JsonNode root) {
    JsonNode ceilings = json.optObject(root, "", "ceilings");
    JsonNode figures = json.array(root, "", "figures");
    JsonNode conf = root.path("configuration");
    List<KernelRun.Row> rows = new ArrayList<>();
    for (int i = 0; i < figures.size(); ++i) {
      JsonNode f = figures.get(i);
      String path = "figures[" + i + "]";
      if (!f.isObject()) {
        throw json.error(path, "expected an object");
      }
      rows.add(row(json, f, path, ceilings, conf.isObject() ? conf : null));
    }
    return new KernelRun(json.file(), RunInfo.of(json, root), json.optText(root, "", "topic"), List.copyOf(rows));
  }

  /**
   * @param ceilings the record's measured ceilings, for a figure that names its roofline but not its value
   * @param conf     the record's configuration, whose shape fields a figure inherits (decode records)
   */
  private static KernelRun.Row row(Json json, JsonNode o, String path, JsonNode ceilings, JsonNode conf) {
    String op = json.text(o, path, "op");
    // bench_paged_decode's quest line times selection + sparse decode as quest_ms; decode records give tokens/s.
    Double time = json.optNumber(o, path, "median_ms");
    if (time == null) {
      time = json.optNumber(o, path, "quest_ms");
    }
    if (time == null && !o.has("decode_tokens_per_s")) {
      throw json.error(path + ".median_ms", "missing");
    }
    double medianMs = time == null ? Double.NaN : time;
    String variant = json.optText(o, path, "kernel");
    if (variant == null && Boolean.TRUE.equals(json.optBoolean(o, path, "baseline"))) {
      variant = "baseline";
    }
    String params = json.optText(o, path, "params");
    StringBuilder shape = new StringBuilder();
    if (params != null) {
      shape.append(params);
    } else {
      for (String k : SHAPE) {
        JsonNode v = o.has(k) ? o.get(k) : conf != null ? conf.get(k) : null;
        if (v != null && !v.isNull() && v.isValueNode()) {
          shape.append(shape.length() == 0 ? "" : ",").append(k).append('=').append(v.asText());
        }
      }
    }
    Integer context = firstInt(json, o, path, "ctx", "kv_len");
    if (context == null && params != null) {
      context = group(CONTEXT, params);
    }
    if (context == null && conf != null && conf.path("prompt_tokens").isNumber()) {
      context = conf.get("prompt_tokens").intValue();
    }
    Integer batch = firstInt(json, o, path, "batch");
    if (batch == null && params != null) {
      batch = group(BATCH, params);
    }
    if (batch == null && conf != null && conf.path("batch").isNumber()) {
      batch = conf.get("batch").intValue();
    }

    String roofline = json.optText(o, path, "roofline");
    if (roofline == null && o.has("read_roofline_bytes_per_s")) {
      roofline = "read";
    }
    Double achieved;
    String unit;
    Double ceiling = null;
    boolean compute = roofline != null && roofline.toLowerCase(Locale.ROOT).contains("compute");
    Double flops = json.optNumber(o, path, "flops_per_s");
    Double tflops = json.optNumber(o, path, "tflops");
    Double bytesPerS = json.optNumber(o, path, "bytes_per_s");
    if (bytesPerS == null) {
      bytesPerS = json.optNumber(o, path, "kv_bytes_per_s");
    }
    Double bytesRead = json.optNumber(o, path, "bytes_read");
    if (bytesPerS == null && bytesRead != null && time != null && time > 0) {
      bytesPerS = bytesRead / (time * 1e-3);
    }
    Double fraction = json.optNumber(o, path, "fraction_of_roofline");
    if (roofline == null && fraction != null && bytesPerS != null) {
      // bench_paged_decode's quest line divides its bytes by the read bandwidth without naming it.
      roofline = "read (implied)";
    }
    Double tokens = json.optNumber(o, path, "decode_tokens_per_s");
    if (compute || (bytesPerS == null && tokens == null && (flops != null || tflops != null))) {
      achieved = flops != null ? flops / 1e12 : tflops;
      unit = "TFLOP/s";
      Double c = ceilings == null ? null : json.optNumber(ceilings, "ceilings", "gemm_bf16_flops_per_s");
      ceiling = c == null || c <= 0 ? null : c / 1e12;
    } else if (tokens != null) {
      achieved = tokens;
      unit = "tokens/s";
      ceiling = json.optNumber(o, path, "roofline_tokens_per_s");
    } else {
      achieved = bytesPerS == null ? null : bytesPerS / 1e9;
      unit = "GB/s";
      if (roofline != null) {
        String name = roofline.replace(" (implied)", "").replace(' ', '_');
        String key = name + "_bytes_per_s";
        Double c = json.optNumber(o, path, name + "_roofline_bytes_per_s");
        if (c == null && ceilings != null) {
          c = json.optNumber(ceilings, "ceilings", key);
        }
        ceiling = c == null ? null : c / 1e9;
      }
    }
    return new KernelRun.Row(op, variant, shape.toString(), context, batch, medianMs, achieved, unit, roofline,
        ceiling, fraction, json.optBoolean(o, path, "goal_met"));
  }

  private static Integer firstInt(Json json, JsonNode o, String path, String... names) {
    for (String n : names) {
      Double d = json.optNumber(o, path, n);
      if (d != null) {
        return d.intValue();
      }
    }
    return null;
  }

  private static Integer group(Pattern p, String s) {
    Matcher m = p.matcher(s);
    return m.find() ? Integer.valueOf(m.group(1)) : null;
  }
}
