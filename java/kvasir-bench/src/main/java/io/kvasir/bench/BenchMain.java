package io.kvasir.bench;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.config.Configurator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

/** The {@code kvasir-bench} command: long-context task records, accuracy on them, perplexity, serving, reports. */
@Command(
    name = "kvasir-bench",
    mixinStandardHelpOptions = true,
    versionProvider = BenchMain.Version.class,
    description = "Kvasir benchmarks: long-context task records (JSONL), model accuracy on them, perplexity,"
        + " end-to-end serving (throughput, TTFT/TPOT/ITL), policies side by side (run), fidelity against full KV,"
        + " tables and charts of their records (compare, report).",
    subcommands = {
        TasksCommand.class,
        EvalCommand.class,
        PplCommand.class,
        ServeCommand.class,
        RunCommand.class,
        FidelityCommand.class,
        CompareCommand.class,
        ReportCommand.class,
        CommandLine.HelpCommand.class,
    })
public final class BenchMain implements Runnable {
  @Spec
  CommandSpec spec;

  @Option(names = {"-q", "--quiet"}, scope = ScopeType.INHERIT,
      description = "Log warnings only (progress goes to stderr at INFO by default).")
  void setQuiet(boolean quiet) {
    if (quiet) {
      Configurator.setRootLevel(Level.WARN);
    }
  }

  /** Without a subcommand: show the usage. */
  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  public static void main(String[] args) {
    System.exit(execute(args));
  }

  /** Runs the command line and returns its exit code (for main and for in-process callers). */
  public static int execute(String... args) {
    return commandLine().execute(args);
  }

  /** A configured picocli command line; callers may redirect its output before executing. */
  public static CommandLine commandLine() {
    prepareSystemProperties();
    return new CommandLine(new BenchMain()).setCaseInsensitiveEnumValuesAllowed(true);
  }

  /**
   * As in the {@code kvasir} command: DJL tokenizers must never try to download native flavours
   * (the GPU machine is offline) and JavaCPP logs through SLF4J when it is present. A value given
   * on the command line wins.
   */
  static void prepareSystemProperties() {
    setIfAbsent("ai.djl.offline", "true");
    try {
      Class.forName("org.slf4j.LoggerFactory", false, BenchMain.class.getClassLoader());
      setIfAbsent("org.bytedeco.javacpp.logger", "slf4j");
    } catch (ClassNotFoundException e) {
      // JavaCPP fails to load anything when told to use SLF4J without it.
    }
  }

  private static void setIfAbsent(String key, String value) {
    if (System.getProperty(key) == null) {
      System.setProperty(key, value);
    }
  }

  /** {@code kvasir-bench --version}: the artifact's version. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String version = BenchMain.class.getPackage().getImplementationVersion();
      return new String[] {"kvasir-bench " + (version == null ? "(development build)" : version)};
    }
  }
}
