package io.kvasir.testing;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/**
 * One in-process run of a picocli command line ({@code kvasir}, {@code kvasir-bench}): its exit
 * code and everything it printed, for the command tests.
 */
public record CliRun(int exit, String out, String err) {

  /** Runs {@code args} on a fresh command line, capturing stdout and stderr. */
  public static CliRun of(CommandLine cli, String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cli.setOut(new PrintWriter(out, true));
    cli.setErr(new PrintWriter(err, true));
    int exit = cli.execute(args);
    return new CliRun(exit, out.toString(), err.toString());
  }
}
