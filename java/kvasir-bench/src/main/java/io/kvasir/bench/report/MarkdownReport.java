package io.kvasir.bench.report;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * One markdown document for a {@link RunSet}: where the runs come from (command, device, date,
 * commit of each), then the serving tables side by side with their charts, the pp/tg matrices,
 * the accuracy grids, the kernel figures, and the files a directory held that are not records.
 */
public final class MarkdownReport {
  private MarkdownReport() {}

  /**
   * @param title    the document's heading
   * @param preface  a paragraph under the heading (what rendered it), or null
   * @param baseline the baseline column's label, or null for the first column
   * @param charts   charts to embed, or an empty list
   * @param mdDir    the directory the markdown is written to, for relative chart links; null for absolute ones
   */
  public static String render(RunSet set, String title, String preface, String baseline, List<Charts.Chart> charts,
      Path mdDir) {
    StringBuilder sb = new StringBuilder();
    sb.append("# ").append(title).append("\n\n");
    if (preface != null && !preface.isEmpty()) {
      sb.append(preface).append("\n\n");
    }
    sb.append(provenanceSummary(set)).append("\n\n");

    List<ServeGroups> groups = ServeGroups.of(set.of(ServeRun.class), set.of(PeerRun.class));
    section(sb, "Serving", Tables.serve(groups, baseline), charts, "serve", mdDir);
    section(sb, "Speed vs context (pp/tg)", Tables.matrix(groups, baseline), charts, "matrix", mdDir);
    section(sb, "Accuracy", Tables.eval(set.of(EvalRun.class), baseline), charts, "eval", mdDir);
    section(sb, "Fidelity against full KV", Tables.fidelity(set.of(FidelityRun.class)), charts, "fidelity", mdDir);
    section(sb, "Kernels", Tables.kernels(set.of(KernelRun.class)), charts, "kernels", mdDir);

    sb.append("## Runs\n\n");
    MarkdownTable runs = new MarkdownTable(List.of("file", "kind", "what", "command", "device", "date", "commit"));
    for (Run r : set.runs()) {
      runs.row(r.fileName(), r.kind(), what(r), r.info().command() == null ? Fmt.NONE : "`" + r.info().command() + "`",
          r.info().device() == null ? Fmt.NONE : r.info().device(), r.info().date() == null ? Fmt.NONE : r.info().date(),
          Fmt.commit(r.info().commit()));
    }
    sb.append(runs.render());
    if (!set.skipped().isEmpty()) {
      sb.append("\n## Files not read\n\n");
      MarkdownTable skipped = new MarkdownTable(List.of("file", "why"));
      set.skipped().forEach(s -> skipped.row(s.file().getFileName().toString(), s.reason()));
      sb.append(skipped.render());
    }
    return sb.toString();
  }

  /** One line: the distinct devices, dates and commits of the runs. */
  static String provenanceSummary(RunSet set) {
    Set<String> devices = new LinkedHashSet<>();
    Set<String> dates = new LinkedHashSet<>();
    Set<String> commits = new LinkedHashSet<>();
    for (Run r : set.runs()) {
      if (r.info().device() != null) {
        devices.add(r.info().device());
      }
      if (r.info().day() != null) {
        dates.add(r.info().day());
      }
      if (r.info().commit() != null) {
        commits.add(Fmt.commit(r.info().commit()));
      }
    }
    return set.runs().size() + " runs. Devices: " + list(devices) + ". Dates: " + list(dates) + ". Commits: "
        + list(commits) + ". Per run: the table at the end.";
  }

  private static String list(Set<String> s) {
    return s.isEmpty() ? "not recorded" : String.join("; ", s);
  }

  private static void section(StringBuilder sb, String heading, List<Tables.Table> tables, List<Charts.Chart> charts,
      String key, Path mdDir) {
    List<Charts.Chart> mine = new ArrayList<>();
    charts.stream().filter(c -> c.section().equals(key)).forEach(mine::add);
    if (tables.isEmpty() && mine.isEmpty()) {
      return;
    }
    sb.append("## ").append(heading).append("\n\n");
    for (Tables.Table t : tables) {
      sb.append(t.render()).append('\n');
    }
    for (Charts.Chart c : mine) {
      Path f = c.file().toAbsolutePath().normalize();
      String link = mdDir == null ? f.toString() : mdDir.toAbsolutePath().normalize().relativize(f).toString();
      sb.append("![").append(c.title().replace("]", ")")).append("](").append(link.replace('\\', '/'))
          .append(")\n\n");
    }
  }

  private static String what(Run r) {
    if (r instanceof ServeRun s) {
      return s.label() + "; " + s.workload().describe();
    }
    if (r instanceof PeerRun p) {
      return p.peer() + "; " + p.topic();
    }
    if (r instanceof EvalRun e) {
      return e.label() + "; " + e.model() + "; " + e.cells().size() + " cells";
    }
    if (r instanceof FidelityRun f) {
      return "fidelity against " + f.baseline() + "; " + f.model() + "; " + f.rows().size() + " rows";
    }
    return ((KernelRun) r).rows().size() + " figures";
  }
}
