package io.kvasir.bench.report;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The markdown tables of a {@link RunSet}, each with a caption that says what its columns are,
 * which column is the baseline, and what was matched with what.
 */
final class Tables {
  private Tables() {}

  /** A titled table. */
  record Table(String title, String caption, MarkdownTable table) {
    String render() {
      return "### " + title + "\n\n" + caption + "\n\n" + table.render();
    }
  }

  /**
   * The baseline column: the label equal to {@code baseline} (ignoring case), else the first
   * label that starts with it followed by a space ({@code full} matches {@code full (bf16+full)}),
   * else -1.
   */
  static int baselineIndex(List<String> labels, String baseline) {
    if (baseline == null) {
      return 0;
    }
    for (int i = 0; i < labels.size(); ++i) {
      if (labels.get(i).equalsIgnoreCase(baseline)) {
        return i;
      }
    }
    for (int i = 0; i < labels.size(); ++i) {
      if (labels.get(i).toLowerCase(java.util.Locale.ROOT).startsWith(baseline.toLowerCase(java.util.Locale.ROOT) + " ")) {
        return i;
      }
    }
    return -1;
  }

  private static String baselineNote(List<String> labels, String baseline, int index, String how) {
    if (labels.size() < 2) {
      return "";
    }
    if (index < 0) {
      return " Baseline `" + baseline + "` is not a column here: " + how + " against the first column, `"
          + labels.get(0) + "`.";
    }
    return " In parentheses: " + how + " against the baseline column `" + labels.get(index) + "`.";
  }

  /** One table per workload: rows are figures, columns Kvasir's policies then the matched peers. */
  static List<Table> serve(List<ServeGroups> groups, String baseline) {
    List<Table> out = new ArrayList<>();
    for (ServeGroups g : groups) {
      List<String> labels = g.labels();
      List<List<Figure>> cols = g.figures();
      int b = baselineIndex(labels, baseline);
      int base = Math.max(b, 0);
      Set<String> names = new LinkedHashSet<>();
      cols.forEach(c -> c.forEach(f -> names.add(f.name())));
      List<String> header = new ArrayList<>();
      header.add("figure");
      header.addAll(labels);
      MarkdownTable t = MarkdownTable.labelled(header);
      for (String name : names) {
        List<String> row = new ArrayList<>();
        row.add(name);
        Double bv = value(cols.get(base), name);
        for (int i = 0; i < cols.size(); ++i) {
          Double v = value(cols.get(i), name);
          String cell = Fmt.num(v);
          String ratio = i == base || v == null ? null : Fmt.ratio(v, bv);
          row.add(ratio == null ? cell : cell + " (" + ratio + ")");
        }
        t.row(row);
      }
      StringBuilder cap = new StringBuilder();
      cap.append(g.model() == null ? "" : "Model `" + g.model() + "`. ");
      cap.append("Columns: ");
      cap.append(g.runs().isEmpty() ? "" : "Kvasir by policy");
      cap.append(g.peers().isEmpty() ? "" : (g.runs().isEmpty() ? "" : ", then ") + "peers");
      cap.append(" (files: ");
      List<String> files = new ArrayList<>();
      g.runs().forEach(r -> files.add("`" + r.fileName() + "`"));
      g.peers().forEach(p -> files.add("`" + p.fileName() + "`"));
      cap.append(String.join(", ", files)).append(").");
      cap.append(baselineNote(labels, baseline, b, "value / baseline (higher is better for throughput and the"
          + " roofline fraction; lower for times and latencies)"));
      if (g.peerMatch() != null) {
        cap.append(" The ").append(g.peerMatch().startsWith("unmatched") ? "peer is " : "").append(g.peerMatch())
            .append('.');
      }
      out.add(new Table(g.title(), cap.toString(), t));
    }
    return out;
  }

  /** The pp/tg speed matrix of each workload that has one: rows (phase, context, batch), columns policies. */
  static List<Table> matrix(List<ServeGroups> groups, String baseline) {
    List<Table> out = new ArrayList<>();
    for (ServeGroups g : groups) {
      List<ServeRun> runs = g.runs().stream().filter(r -> !r.matrix().isEmpty()).toList();
      if (runs.isEmpty()) {
        continue;
      }
      List<String> labels = ServeGroups.unique(runs.stream().map(ServeRun::label).toList(),
          i -> runs.get(i).policyResolved(), i -> runs.get(i).fileName());
      int b = baselineIndex(labels, baseline);
      int base = Math.max(b, 0);
      Map<String, Map<Integer, Double>> cells = new TreeMap<>();
      for (int i = 0; i < runs.size(); ++i) {
        for (ServeRun.MatrixRow m : runs.get(i).matrix()) {
          String key = String.format(java.util.Locale.ROOT, "%s|%012d|%08d", m.phase(), m.context(), m.batch());
          cells.computeIfAbsent(key, k -> new LinkedHashMap<>()).put(i, m.tokensPerS());
        }
      }
      List<String> header = new ArrayList<>(List.of("test", "context (tokens)", "batch"));
      header.addAll(labels);
      boolean[] right = new boolean[header.size()];
      java.util.Arrays.fill(right, 1, right.length, true);
      MarkdownTable t = new MarkdownTable(header, right);
      for (Map.Entry<String, Map<Integer, Double>> e : cells.entrySet()) {
        String[] k = e.getKey().split("\\|");
        List<String> row = new ArrayList<>(List.of(k[0], Integer.toString(Integer.parseInt(k[1])),
            Integer.toString(Integer.parseInt(k[2]))));
        Double bv = e.getValue().get(base);
        for (int i = 0; i < runs.size(); ++i) {
          Double v = e.getValue().get(i);
          String ratio = i == base || v == null ? null : Fmt.ratio(v, bv);
          row.add(ratio == null ? Fmt.num(v) : Fmt.num(v) + " (" + ratio + ")");
        }
        t.row(row);
      }
      String cap = "Tokens/s: prompt processing (pp) or generation (tg) at a context length and batch."
          + baselineNote(labels, baseline, b, "value / baseline");
      out.add(new Table("pp/tg speed: " + g.title(), cap, t));
    }
    return out;
  }

  /** Accuracy per (task, length), one table per model, columns the policies. */
  static List<Table> eval(List<EvalRun> runs, String baseline) {
    List<Table> out = new ArrayList<>();
    for (Map.Entry<String, List<EvalColumns>> e : EvalColumns.byModel(runs).entrySet()) {
      List<EvalColumns> cols = e.getValue();
      List<String> labels = cols.stream().map(EvalColumns::label).toList();
      int b = baselineIndex(labels, baseline);
      int base = Math.max(b, 0);
      Set<String> keys = new LinkedHashSet<>();
      cols.forEach(c -> keys.addAll(c.cells().keySet()));
      List<String> header = new ArrayList<>(List.of("task @ length (tokens)"));
      header.addAll(labels);
      MarkdownTable t = MarkdownTable.labelled(header);
      for (String key : keys) {
        List<String> row = new ArrayList<>(List.of(key));
        EvalRun.Cell bc = cols.get(base).cells().get(key);
        for (int i = 0; i < cols.size(); ++i) {
          EvalRun.Cell v = cols.get(i).cells().get(key);
          if (v == null) {
            row.add(Fmt.NONE);
            continue;
          }
          String cell = String.format(java.util.Locale.ROOT, "%.3f (n=%d", v.accuracy(), v.count());
          cell += i == base || bc == null ? ")" : ", " + Fmt.diff(v.accuracy(), bc.accuracy()) + ")";
          row.add(cell);
        }
        t.row(row);
      }
      Set<String> files = new LinkedHashSet<>();
      cols.forEach(c -> c.files().forEach(f -> files.add("`" + f + "`")));
      String cap = "Exact-match accuracy (samples n) per task and total length (files: " + String.join(", ", files)
          + ")." + baselineNote(labels, baseline, b, "the difference in accuracy");
      out.add(new Table("Accuracy: " + e.getKey(), cap, t));
    }
    return out;
  }

  /** Kernel figures, one table per file: each against the roofline it names. */
  static List<Table> kernels(List<KernelRun> runs) {
    List<Table> out = new ArrayList<>();
    for (KernelRun k : runs) {
      MarkdownTable t = new MarkdownTable(List.of("op", "variant", "shape", "median ms", "achieved", "roofline",
          "% of roofline", "goal met"), false, false, false, true, true, false, true, false);
      for (KernelRun.Row r : k.rows()) {
        String achieved = r.achieved() == null ? Fmt.NONE : Fmt.num(r.achieved()) + " " + r.achievedUnit();
        String roof = r.roofline() == null ? "none named"
            : r.ceiling() == null ? r.roofline() : r.roofline() + " (" + Fmt.num(r.ceiling()) + " " + r.achievedUnit()
                + ")";
        t.row(r.op(), r.variant() == null ? Fmt.NONE : r.variant(), r.shape(), Fmt.num(r.medianMs()), achieved, roof,
            Fmt.percent(r.fraction()), r.goalMet() == null ? Fmt.NONE : r.goalMet() ? "yes" : "no");
      }
      String cap = "Figures of `" + k.fileName() + "`" + (k.info().device() == null ? "" : " on " + k.info().device())
          + ". Each divides its achieved rate by the ceiling it names (measured in the same run); `% of roofline` is"
          + " the record's own `fraction_of_roofline`, and a figure that names no roofline shows none.";
      out.add(new Table("Kernels: " + k.fileName(), cap, t));
    }
    return out;
  }

  static Double value(List<Figure> figures, String name) {
    for (Figure f : figures) {
      if (f.name().equals(name)) {
        return f.value();
      }
    }
    return null;
  }

  /** One table per fidelity record: a row per (policy, prompt group), the policy's {@code all} row included. */
  static List<Table> fidelity(List<FidelityRun> runs) {
    List<Table> out = new ArrayList<>();
    for (FidelityRun f : runs) {
      MarkdownTable t = new MarkdownTable(List.of("policy", "group", "prompts", "steps", "mean KL (nats)", "p50 KL",
          "p90 KL", "max KL", "top-1 agreement", "token agreement", "first divergence (median)",
          "first divergence (min)"));
      for (FidelityRun.Row r : f.rows()) {
        t.row(r.policy(), r.group(), Integer.toString(r.prompts()), Long.toString(r.steps()), Fmt.num(r.klMean()),
            Fmt.num(r.klP50()), Fmt.num(r.klP90()), Fmt.num(r.klMax()), String.format(java.util.Locale.ROOT, "%.4f",
                r.top1Agreement()), String.format(java.util.Locale.ROOT, "%.4f", r.tokenAgreement()),
            Fmt.num(r.firstDivergenceMedian()), Fmt.num(r.firstDivergenceMin()));
      }
      out.add(new Table("Fidelity: " + f.model(), "Each policy against `" + f.baseline() + "` on the same prompts, "
          + f.tokens() + " teacher-forced tokens each: KL(p_" + f.baseline() + " || p_policy) per step, agreement"
          + " of the top-1 token and of free-running greedy tokens, and the first position where they differ"
          + " (a prompt that never diverges counts as " + f.tokens() + ") (file: `" + f.fileName() + "`).", t));
    }
    return out;
  }
}
