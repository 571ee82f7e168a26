package io.kvasir.bench;

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
 * {@code kvasir-bench compare}: records side by side, one markdown table per workload (policies
 * and matched peers as columns, ratios against a baseline), accuracy grids, kernel figures, and
 * optionally their charts as SVG. Exit code 0 on success, 1 when a record cannot be read (the
 * message names the file and field), 2 for a malformed command line.
 */
@Command(name = "compare", mixinStandardHelpOptions = true,
    description = "Put benchmark records side by side: markdown tables (and SVG charts) of serving, peer, accuracy"
        + " and kernel records.")
final class CompareCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(CompareCommand.class);

  @Spec
  CommandSpec spec;

  @Parameters(arity = "1..*", paramLabel = "RECORD|DIR", description = "Record files (JSON, JSON lines), or"
      + " directories whose *.json and *.jsonl are read (files of other formats there are listed, not read).")
  List<Path> inputs;

  @Option(names = "--baseline", paramLabel = "NAME", description = "The column ratios are taken against: a policy"
      + " (full) or peer label (default: the first column of each table).")
  String baseline;

  @Option(names = "--md", paramLabel = "FILE", description = "Write the markdown here (default: stdout).")
  Path md;

  @Option(names = "--charts", paramLabel = "DIR", description = "Render the charts into DIR as SVG and link them.")
  Path charts;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    try {
      RunSet set = RunSet.load(inputs);
      if (set.runs().isEmpty()) {
        err.println("error: no records in " + inputs);
        err.flush();
        return 1;
      }
      List<Charts.Chart> chartList = charts == null ? List.of() : Charts.renderAll(set, charts);
      Path mdDir = md == null ? Path.of("") : md.toAbsolutePath().getParent();
      String command = "kvasir-bench compare " + String.join(" ",
          spec.commandLine().getParseResult().originalArgs());
      String text = MarkdownReport.render(set, "Comparison", "Rendered by `" + command + "`.", baseline, chartList,
          mdDir);
      if (md == null) {
        PrintWriter out = spec.commandLine().getOut();
        out.print(text);
        out.flush();
      } else {
        if (mdDir != null) {
          Files.createDirectories(mdDir);
        }
        Files.writeString(md, text, StandardCharsets.UTF_8);
        LOG.info("wrote {} ({} runs, {} charts)", md, set.runs().size(), chartList.size());
      }
      return 0;
    } catch (RecordException | IOException e) {
      LOG.debug("compare failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }
}
