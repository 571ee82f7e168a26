package io.kvasir.cli;

import io.kvasir.bench.BenchMain;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.config.Configurator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

/** The {@code kvasir} command. */
@Command(
    name = "kvasir",
    mixinStandardHelpOptions = true,
    versionProvider = VersionProvider.class,
    description = "Kvasir: a KV-cache runtime for LLM serving on the JVM.",
    subcommands = {
        InfoCommand.class,
        GenerateCommand.class,
        ServeCommand.class,
        // "bench" is added in commandLine().
        CommandLine.HelpCommand.class,
    })
public final class KvasirCli implements Runnable {
  /** Raises logging to this level; also settable as {@code -Dkvasir.log.level=...} (see log4j2.xml). */
  static final String LOG_LEVEL_PROPERTY = "kvasir.log.level";

  @Spec
  CommandSpec spec;

  @Option(names = {"-v", "--verbose"}, scope = ScopeType.INHERIT,
      description = "Log at INFO (diagnostics go to stderr; default WARN).")
  void setVerbose(boolean verbose) {
    if (verbose) {
      raiseLogLevel(Level.INFO);
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
    prepareSystemProperties();
    return commandLine().execute(args);
  }

  /**
   * A configured picocli command line; callers may redirect its output before executing.
   * {@code kvasir bench ...} is the {@code kvasir-bench} command line itself (every bench command
   * with the same options), logging progress at INFO as {@code kvasir-bench} does unless
   * {@code -q} or {@code -Dkvasir.log.level} says otherwise.
   */
  public static CommandLine commandLine() {
    prepareSystemProperties();
    CommandLine cli = new CommandLine(new KvasirCli());
    cli.addSubcommand(BENCH, BenchMain.commandLine().setCommandName(BENCH));
    cli.setCaseInsensitiveEnumValuesAllowed(true);
    cli.setExecutionStrategy(parseResult -> {
      CommandLine.ParseResult sub = parseResult.subcommand();
      if (sub != null && sub.commandSpec().name().equals(BENCH) && !sub.hasMatchedOption("-q")
          && System.getProperty(LOG_LEVEL_PROPERTY) == null) {
        raiseLogLevel(Level.INFO);
      }
      return new CommandLine.RunLast().execute(parseResult);
    });
    return cli;
  }

  /** The subcommand that forwards to {@code kvasir-bench}. */
  static final String BENCH = "bench";

  /**
   * Properties that must be in place before the libraries that read them load: DJL tokenizers
   * (later issues) must never try to download native flavours on the offline GPU machine, and
   * JavaCPP should log through SLF4J (hence Log4j) instead of printing to stderr itself. A value
   * given on the command line wins.
   */
  static void prepareSystemProperties() {
    setIfAbsent("ai.djl.offline", "true");
    // JavaCPP fails to load anything when told to use SLF4J without it: only route when present.
    if (isPresent("org.slf4j.LoggerFactory")) {
      setIfAbsent("org.bytedeco.javacpp.logger", "slf4j");
    }
  }

  private static boolean isPresent(String className) {
    try {
      Class.forName(className, false, KvasirCli.class.getClassLoader());
      return true;
    } catch (ClassNotFoundException e) {
      return false;
    }
  }

  private static void setIfAbsent(String key, String value) {
    if (System.getProperty(key) == null) {
      System.setProperty(key, value);
    }
  }

  /** Lowers the root logger's threshold to {@code level}, never raising it. */
  static void raiseLogLevel(Level level) {
    Level current = LogManager.getRootLogger().getLevel();
    if (current == null || (current != level && current.isMoreSpecificThan(level))) {
      Configurator.setRootLevel(level);
    }
  }
}
