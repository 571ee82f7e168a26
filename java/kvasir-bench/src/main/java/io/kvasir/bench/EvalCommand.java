package io.kvasir.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.bench.tasks.Haystack;
import io.kvasir.bench.tasks.HfTokenCounter;
import io.kvasir.bench.tasks.Task;
import io.kvasir.engine.Engine;
import io.kvasir.engine.SyntheticModels;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
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
 * {@code kvasir-bench eval}: a model's accuracy on a grid of (task, length), as a JSON file and a
 * markdown table. Exit code 0 on success, 1 when the model, haystack or a length cannot be used
 * (the message says why), 2 for a malformed command line.
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
    description = "Measure a model's accuracy on generated long-context tasks (greedy, exact match).")
final class EvalCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(EvalCommand.class);

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--task", required = true, split = ",", paramLabel = "NAME",
      description = "Task(s) to run (repeatable or comma-separated).")
  List<String> tasks;

  @Option(names = "--length", required = true, split = ",", paramLabel = "N",
      description = "Total token length(s): chat-rendered prompt + answer + 8 fit in it (repeatable or comma-separated).")
  List<Integer> lengths;

  @Option(names = "--count", defaultValue = "20", description = "Samples per (task, length) (default ${DEFAULT-VALUE}).")
  int count;

  @Option(names = "--seed", defaultValue = "0", description = "Sample i has seed SEED + i (default ${DEFAULT-VALUE}).")
  long seed;

  /** The held-out prose a model directory may ship for evaluation haystacks (models/kvasir-ref does). */
  static final String HELD_OUT_PROSE = "heldout-prose.txt";

  @Option(names = "--haystack", paramLabel = "FILE", description = "Filler prose: UTF-8, one paragraph per line"
      + " (default: the model directory's heldout-prose.txt when it has one, as kvasir-ref does).")
  Path haystack;

  @Option(names = "--depth", paramLabel = "F", description = "Needle depth in [0, 1] for passkey and niah_single"
      + " (default: random per sample).")
  Double depth;

  @Option(names = "--max-context", paramLabel = "N", description = "Tokens per sequence in the KV cache (default: the"
      + " largest length + 24, for the answer's extra tokens).")
  Integer maxContext;

  @Option(names = "--out", paramLabel = "FILE.json", description = "Write the results as JSON here.")
  Path out;

  @Option(names = "--export-records", paramLabel = "FILE.jsonl", description = "Also write every record evaluated"
      + " (the task JSONL schema plus \"eval_length\", the cell's length), for a peer to run the same prompts"
      + " (tools/peers/hf_eval_tasks.py).")
  Path exportRecords;

  @Override
  public Integer call() {
    PrintWriter stdout = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    List<Task> taskList = new ArrayList<>();
    try {
      for (String t : tasks) taskList.add(Task.of(t));
      for (int length : lengths) {
        if (length < 2) {
          throw new IllegalArgumentException("--length " + length + " must be >= 2");
        }
      }
      if (count < 1) {
        throw new IllegalArgumentException("--count " + count + " must be >= 1");
      }
    } catch (IllegalArgumentException e) {
      err.println("error: " + e.getMessage());
      err.flush();
      return 2;
    }
    int longest = lengths.stream().mapToInt(Integer::intValue).max().orElseThrow();
    int context = maxContext != null ? maxContext : longest + Evaluator.EXTRA_ANSWER_TOKENS + Evaluator.SLACK_TOKENS;
    try (HfTokenCounter counter = HfTokenCounter.load(modelOptions.tokenizerDir());
         Engine engine = modelOptions.build(context)) {
      if (engine.maxContext() < longest) {
        LOG.warn("the engine holds {} tokens per sequence, less than the longest length {}", engine.maxContext(),
            longest);
      }
      if (haystack == null && !SyntheticModels.isSynthetic(modelOptions.model)
          && Files.isRegularFile(modelOptions.modelDir().resolve(HELD_OUT_PROSE))) {
        haystack = modelOptions.modelDir().resolve(HELD_OUT_PROSE);
      }
      Haystack hay = haystack == null ? null : Haystack.load(haystack);
      Evaluator evaluator = new Evaluator(engine, counter, hay, depth, modelOptions.batch);
      List<Evaluator.Cell> cells = new ArrayList<>();
      try (java.io.Writer export = exportRecords == null ? null
          : Files.newBufferedWriter(exportRecords, java.nio.charset.StandardCharsets.UTF_8)) {
        if (export != null) {
          evaluator.onRecords((length, r) -> {
            try {
              export.write(withEvalLength(r.toJson(), length));
              export.write('\n');
            } catch (IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
          });
        }
        for (Task task : taskList) {
          for (int length : lengths) {
            cells.add(evaluator.run(task, length, count, seed));
          }
        }
      }
      if (out != null) {
        writeJson(out, engine, evaluator, cells);
      }
      stdout.println("| task | length | n | accuracy |");
      stdout.println("|---|---:|---:|---:|");
      for (Evaluator.Cell c : cells) {
        stdout.printf(Locale.ROOT, "| %s | %d | %d | %.3f |%n", c.task(), c.length(), c.count(), c.accuracy());
      }
      stdout.flush();
      return 0;
    } catch (IOException | RuntimeException e) {
      LOG.debug("eval failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }

  /** A record's JSON line with {@code "eval_length"} appended as its last field. */
  static String withEvalLength(String recordJson, int length) {
    return recordJson.substring(0, recordJson.length() - 1) + ",\"eval_length\":" + length + "}";
  }

  private void writeJson(Path file, Engine engine, Evaluator evaluator, List<Evaluator.Cell> cells) throws IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = json.createObjectNode();
    root.put("model", engine.modelName());
    root.put("device", modelOptions.deviceLabel());
    root.put("policy", modelOptions.policy == null ? "none (slot caches)" : modelOptions.policy);
    String commit = System.getenv("KVASIR_GIT_COMMIT");
    if (commit != null && !commit.isEmpty()) {
      root.put("git_commit", commit);
    }
    root.put("date", Instant.now().toString());
    root.put("dtype", engine.shape().weightDtype().name());
    root.put("haystack", haystack == null ? null : haystack.toString());
    root.put("seed", seed);
    root.put("depth", depth);
    root.put("batch", modelOptions.batch);
    root.put("max_context", engine.maxContext());
    root.put("template_tokens", evaluator.templateTokens());
    root.put("budget_rule", "prompt budget = length - template tokens - longest answer tokens - "
        + Evaluator.SLACK_TOKENS + " (shrunk further if a chat-rendered sample + answer + slack would exceed length);"
        + " generation: greedy, at most answer tokens + " + Evaluator.EXTRA_ANSWER_TOKENS);
    ArrayNode results = root.putArray("results");
    for (Evaluator.Cell c : cells) {
      ObjectNode r = results.addObject();
      r.put("task", c.task().id());
      r.put("length", c.length());
      r.put("prompt_budget", c.promptBudget());
      r.put("max_total_tokens", c.maxTotalTokens());
      r.put("count", c.count());
      r.put("correct", c.correct());
      r.put("accuracy", c.accuracy());
      r.put("mean_partial", c.meanPartial());
      r.put("mean_prompt_tokens", c.meanPromptTokens());
      r.put("mean_chat_tokens", c.meanChatTokens());
      r.put("mean_prefill_s", c.meanPrefillSeconds());
      r.put("seconds", c.seconds());
      ArrayNode failures = r.putArray("failures");
      for (Evaluator.Failure f : c.failures()) {
        failures.addObject().put("id", f.id()).put("expected", f.expected()).put("got", f.got());
      }
    }
    json.writerWithDefaultPrettyPrinter().writeValue(file.toFile(), root);
  }
}
