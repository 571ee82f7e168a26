package io.kvasir.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.engine.Engine;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir-bench ppl}: perplexity of held-out prose through the engine (teacher-forced,
 * non-overlapping windows). Exit code 0 on success, 1 when the model or text cannot be used, 2 for
 * a malformed command line.
 */
@Command(name = "ppl", mixinStandardHelpOptions = true,
    description = "Perplexity of a text file with a model (non-overlapping windows, each scored on its own).")
final class PplCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(PplCommand.class);

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--text", required = true, paramLabel = "FILE", description = "UTF-8 text to score.")
  Path text;

  @Option(names = "--window", defaultValue = "1024", description = "Tokens per window (default ${DEFAULT-VALUE}).")
  int window;

  @Option(names = "--max-tokens", paramLabel = "N", description = "Use only the first N tokens of the text.")
  Integer maxTokens;

  @Option(names = "--out", paramLabel = "FILE.json", description = "Write the result as JSON here.")
  Path out;

  @Override
  public Integer call() {
    PrintWriter stdout = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    if (window < 2 || (maxTokens != null && maxTokens < 2)) {
      err.println("error: --window and --max-tokens must be >= 2");
      err.flush();
      return 2;
    }
    try (Engine engine = modelOptions.build(window)) {
      if (engine.maxContext() < window) {
        throw new IllegalArgumentException("--window " + window + " exceeds the model's context of "
            + engine.maxContext() + " tokens");
      }
      String content;
      try {
        content = Files.readString(text, StandardCharsets.UTF_8);
      } catch (NoSuchFileException e) {
        throw new IllegalArgumentException("text file " + text + " does not exist", e);
      }
      int[] tokens = engine.encode(content);
      if (maxTokens != null && tokens.length > maxTokens) {
        tokens = Arrays.copyOf(tokens, maxTokens);
      }
      LOG.info("{}: {} tokens in windows of {}", text, tokens.length, window);
      Perplexity.Result r = Perplexity.compute(engine, tokens, window);
      if (out != null) {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("model", engine.modelName());
        root.put("device", modelOptions.deviceLabel());
        String commit = System.getenv("KVASIR_GIT_COMMIT");
        if (commit != null && !commit.isEmpty()) {
          root.put("git_commit", commit);
        }
        root.put("date", Instant.now().toString());
        root.put("dtype", engine.shape().weightDtype().name());
        root.put("text", text.toString());
        root.put("text_tokens", tokens.length);
        root.put("window", window);
        root.put("windows", r.windows());
        root.put("scored_tokens", r.scoredTokens());
        root.put("mean_nll", r.meanNll());
        root.put("perplexity", r.perplexity());
        root.put("seconds", r.seconds());
        json.writerWithDefaultPrettyPrinter().writeValue(out.toFile(), root);
      }
      stdout.println("| model | window | windows | tokens | perplexity |");
      stdout.println("|---|---:|---:|---:|---:|");
      stdout.printf(Locale.ROOT, "| %s | %d | %d | %d | %.4f |%n", engine.modelName(), window, r.windows(),
          r.scoredTokens(), r.perplexity());
      stdout.flush();
      return 0;
    } catch (IOException | RuntimeException e) {
      LOG.debug("ppl failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }
}
