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
      String runCommand = indexCommand(dir.resolve(RunSet.INDEX));
      if (runCommand != null) {
        preface.append(" The runs: `").append(runCommand).append("`.");
      }
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

  /** The command the index says produced the directory, when it has one; the index is otherwise not needed. */
  private static String indexCommand(Path index) {
    if (!Files.isRegularFile(index)) {
      return null;
    }
    try {
      JsonNode n = new ObjectMapper().readTree(index.toFile());
      return n != null && n.path("command").isTextual() ? n.get("command").asText() : null;
    } catch (IOException e) {
      LOG.warn("{}: not JSON, ignored ({})", index, e.getMessage());
      return null;
    }
  }
}
