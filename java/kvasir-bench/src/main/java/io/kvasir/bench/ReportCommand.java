package io.kvasir.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.bench.report.Charts;
import io.kvasir.bench.report.MarkdownReport;
import io.kvasir.bench.report.RecordException;
import io.kvasir.bench.report.RunSet;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir-bench report DIR}: everything a {@code --out} directory holds, as
 * {@code DIR/report.md} and {@code DIR/charts/*.svg}. Exit code 0 on success, 1 when a record
 * cannot be read, 2 for a malformed command line.
 */
@Command(name = "report", mixinStandardHelpOptions = true,
    description = "Render a directory of benchmark records into DIR/report.md and DIR/charts/*.svg.")
final class ReportCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(ReportCommand.class);
  static final String REPORT = "report.md";
  static final String CHARTS = "charts";

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "DIR", description = "A directory of records (a run --out directory).")
  Path dir;

  @Option(names = "--baseline", paramLabel = "NAME", description = "The column ratios are taken against"
      + " (default: the first column of each table).")
  String baseline;

  @Option(names = "--no-charts", description = "Write the tables only.")
  boolean noCharts;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    if (!Files.isDirectory(dir)) {
      err.println("error: " + dir + " is not a directory");
      err.flush();
      return 2;
    }
    try {
      RunSet set = RunSet.load(List.of(dir));
      if (set.runs().isEmpty()) {
        err.println("error: no records in " + dir);
        err.flush();
        return 1;
      }
      List<Charts.Chart> charts = noCharts ? List.of() : Charts.renderAll(set, dir.resolve(CHARTS));
      StringBuilder preface = new StringBuilder("Rendered by `kvasir-bench report " + dir + "` from the records in"
          + " this directory.");
      preface.append(index(dir.resolve(RunSet.INDEX)));
      Path out = dir.resolve(REPORT);
      Files.writeString(out, MarkdownReport.render(set, "Benchmark report", preface.toString(), baseline, charts, dir),
          StandardCharsets.UTF_8);
      LOG.info("wrote {} ({} runs, {} charts)", out, set.runs().size(), charts.size());
      return 0;
    } catch (RecordException | IOException e) {
      LOG.debug("report failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }

  /**
   * What the index ({@code summary.json} of {@code kvasir-bench run}, {@code kvasir-bench-run/1})
   * adds: the command that produced the directory, and the (workload, policy) pairs that failed,
   * which have no record to show. Empty without an index.
   */
  static String index(Path index) {
    if (!Files.isRegularFile(index)) {
      return "";
    }
    JsonNode n;
    try {
      n = new ObjectMapper().readTree(index.toFile());
    } catch (IOException e) {
      LOG.warn("{}: not JSON, ignored ({})", index, e.getMessage());
      return "";
    }
    StringBuilder sb = new StringBuilder();
    if (n != null && n.path("command").isTextual()) {
      sb.append(" The runs: `").append(n.get("command").asText()).append("`.");
    }
    if (n != null && n.path("records").isArray()) {
      StringBuilder failed = new StringBuilder();
      for (JsonNode r : n.get("records")) {
        String status = r.path("status").asText("ok");
        if (!status.equals("ok")) {
          failed.append("\n- ").append(r.path("workload").asText("?")).append(" under `")
              .append(r.path("policy").asText("?")).append("`: ").append(status)
              .append(r.hasNonNull("error") ? " (" + r.get("error").asText().replace('\n', ' ') + ")" : "");
        }
      }
      if (failed.length() > 0) {
        sb.append("\n\nRuns that failed (").append(RunSet.INDEX).append("), so without a record:\n").append(failed);
      }
    }
    return sb.toString();
  }
}
