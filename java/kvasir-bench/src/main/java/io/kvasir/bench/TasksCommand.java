package io.kvasir.bench;

import io.kvasir.bench.tasks.ApproxTokenCounter;
import io.kvasir.bench.tasks.Haystack;
import io.kvasir.bench.tasks.HfTokenCounter;
import io.kvasir.bench.tasks.StreamSpec;
import io.kvasir.bench.tasks.Task;
import io.kvasir.bench.tasks.TaskGenerator;
import io.kvasir.bench.tasks.TaskStream;
import io.kvasir.bench.tasks.TokenCounter;
import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir-bench tasks}: task records as JSON lines on stdout or into a file. Exit code 0 on
 * success (also when the reader closes the pipe), 1 when a record cannot be made (the message
 * says why), 2 for a malformed command line.
 */
@Command(name = "tasks", mixinStandardHelpOptions = true,
    description = "Write long-context task records (JSONL; schema in docs/bench-tasks.md).")
final class TasksCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(TasksCommand.class);

  @Spec
  CommandSpec spec;

  static final class Which {
    @Option(names = "--task", paramLabel = "NAME", description = "One task: passkey, niah_single, niah_multikey,"
        + " niah_multivalue, niah_multiquery, kv_retrieval, variable_tracking, arithmetic, docqa, cwe.")
    String task;

    @Option(names = "--mix", paramLabel = "SPEC", description = "A weighted mixture, e.g."
        + " passkey=0.2,niah_multikey=0.2,arithmetic=0.3,docqa=0.1 (weights are normalized).")
    String mix;
  }

  static final class Lengths {
    @Option(names = "--length", paramLabel = "N", description = "Prompt token budget of every record.")
    Integer length;

    @Option(names = "--length-range", paramLabel = "MIN:MAX", description = "Per record a budget drawn log-uniformly"
        + " in [MIN, MAX] (from the record's seed).")
    String range;
  }

  @ArgGroup(exclusive = true, multiplicity = "1")
  Which which;

  @ArgGroup(exclusive = true, multiplicity = "1")
  Lengths lengths;

  @Option(names = "--count", defaultValue = "1", description = "Records to write; -1 writes until the reader closes"
      + " the pipe (default ${DEFAULT-VALUE}).")
  long count;

  @Option(names = "--seed", defaultValue = "0", description = "Record i has seed SEED + i (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--haystack", paramLabel = "FILE", description = "Filler prose: UTF-8, one paragraph per line"
      + " (needed by every task but kv_retrieval and arithmetic).")
  Path haystack;

  @Option(names = "--tokenizer", paramLabel = "DIR|FILE", description = "Count tokens with this model directory's"
      + " tokenizer.json (or the file); default: approximately, UTF-8 bytes / 4.")
  Path tokenizer;

  @Option(names = "--depth", paramLabel = "F", description = "Needle depth in [0, 1] for passkey and niah_single"
      + " (default: random per record).")
  Double depth;

  @Option(names = "--threads", description = "Generator threads (default: cores, at most 8); the output does not"
      + " depend on it.")
  Integer threads;

  @Option(names = "--out", paramLabel = "FILE", description = "Write here instead of stdout.")
  Path out;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    int threadCount = threads != null ? threads : Math.min(8, Runtime.getRuntime().availableProcessors());
    StreamSpec streamSpec;
    try {
      int[] range = lengthRange();
      streamSpec = which.task != null ? StreamSpec.of(Task.of(which.task), range[0], range[1], seed)
          : StreamSpec.mixture(which.mix, range[0], range[1], seed);
      if (threadCount < 1) {
        throw new IllegalArgumentException("--threads " + threadCount + " must be >= 1");
      }
    } catch (IllegalArgumentException e) {
      err.println("error: " + e.getMessage());
      err.flush();
      return 2;
    }
    try (HfTokenCounter hf = tokenizer == null ? null : HfTokenCounter.load(tokenizer)) {
      TokenCounter counter = hf != null ? hf : ApproxTokenCounter.INSTANCE;
      Haystack hay = haystack == null ? null : Haystack.load(haystack);
      TaskGenerator generator = new TaskGenerator(hay, counter, depth);
      if (out != null) {
        try (Writer w = Files.newBufferedWriter(out, StandardCharsets.UTF_8)) {
          TaskStream.write(generator, streamSpec, count, threadCount, w);
        }
        return 0;
      }
      // FileDescriptor.out, not System.out: a PrintStream swallows the broken pipe that ends the stream.
      Writer w = new BufferedWriter(new OutputStreamWriter(new FileOutputStream(FileDescriptor.out),
          StandardCharsets.UTF_8), 1 << 20);
      try {
        TaskStream.write(generator, streamSpec, count, threadCount, w);
      } catch (IOException e) {
        LOG.debug("stdout closed: {}", e.getMessage());
        return 0;
      }
      return 0;
    } catch (IOException | RuntimeException e) {
      LOG.debug("tasks failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }

  private int[] lengthRange() {
    if (lengths.length != null) {
      return new int[] {lengths.length, lengths.length};
    }
    String[] ab = lengths.range.split(":");
    try {
      if (ab.length == 2) {
        return new int[] {Integer.parseInt(ab[0].strip()), Integer.parseInt(ab[1].strip())};
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new IllegalArgumentException("--length-range \"" + lengths.range + "\" must be MIN:MAX (two integers)");
  }
}
