package io.kvasir.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.bench.fidelity.FidelityRunner;
import io.kvasir.bench.fidelity.FidelitySummary;
import io.kvasir.bench.fidelity.PromptComparison;
import io.kvasir.bench.tasks.Haystack;
import io.kvasir.bench.tasks.HfTokenCounter;
import io.kvasir.bench.tasks.LengthTooSmallException;
import io.kvasir.bench.tasks.Task;
import io.kvasir.bench.tasks.TaskGenerator;
import io.kvasir.bench.tasks.TaskRecord;
import io.kvasir.engine.Engine;
import io.kvasir.engine.SyntheticModels;
import io.kvasir.model.tokenizer.ChatMessage;
import io.kvasir.model.tokenizer.ChatTemplate;
import io.kvasir.model.tokenizer.Tokenizer;
import io.kvasir.perf.PerfRecords;
import io.kvasir.policy.Policy;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir-bench fidelity}: each policy against full KV on the same chat-rendered prompts
 * (docs/fidelity.md). Exit code 0 on success, 1 when the model, a file or a length cannot be used,
 * 2 for a malformed command line or policy list.
 */
@Command(name = "fidelity", mixinStandardHelpOptions = true,
    description = "Compare cache policies with full KV on identical prompts: per-step KL(p_full || p_policy) and"
        + " top-1 agreement along the full-KV greedy continuation (teacher-forced through each policy's decode"
        + " path), and where free-running greedy generation under each policy first departs from it.")
final class FidelityCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(FidelityCommand.class);
  /** Tokens left free in {@code length} besides the template, the prompt and the continuation. */
  static final int SLACK_TOKENS = 8;
  /** Per-prompt rows kept in the record. */
  static final int PER_PROMPT_CAP = 256;

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--policies", required = true, paramLabel = "SPECS",
      description = "Policies to compare, separated by ';' (e.g. \"quest:k=16;quest:k=64\"); each runs without"
          + " prefix caching. Include the baseline (\"full\") to measure the run-to-run floor.")
  String policies;

  @Option(names = "--baseline", defaultValue = "full", paramLabel = "SPEC",
      description = "The reference policy (default ${DEFAULT-VALUE}: dense paged attention).")
  String baseline;

  @Option(names = "--tokens", defaultValue = "64", paramLabel = "N",
      description = "Continuation tokens per prompt: greedy, EOS ignored (default ${DEFAULT-VALUE}).")
  int tokens;

  @Option(names = "--task", split = ",", paramLabel = "NAME",
      description = "Generate prompts for these tasks (comma-separated), as eval does.")
  List<String> tasks;

  @Option(names = "--length", split = ",", paramLabel = "N",
      description = "Total token length(s): chat-rendered prompt + continuation + 8 fit in it.")
  List<Integer> lengths;

  @Option(names = "--count", defaultValue = "8", description = "Prompts per (task, length) (default ${DEFAULT-VALUE}).")
  int count;

  @Option(names = "--seed", defaultValue = "0", description = "Prompt i has seed SEED + i (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--haystack", paramLabel = "FILE", description = "Filler prose (default: the model directory's"
      + " heldout-prose.txt when it has one).")
  Path haystack;

  @Option(names = "--depth", paramLabel = "F", description = "Needle depth in [0, 1] for passkey and niah_single.")
  Double depth;

  @Option(names = "--prompts", paramLabel = "FILE.jsonl", description = "Prompts from a JSONL file instead: one"
      + " object per line with a \"prompt\" (the user message) and optionally \"id\", \"task\" and \"length\""
      + " (kvasir-bench tasks records qualify).")
  Path promptsFile;

  @Option(names = "--page-tokens", defaultValue = "16", description = "Tokens per page (default ${DEFAULT-VALUE}).")
  int pageTokens;

  @Option(names = "--max-context", paramLabel = "N", description = "Tokens per sequence (default: the longest prompt"
      + " plus --tokens).")
  Integer maxContext;

  @Option(names = "--out", paramLabel = "FILE.json", description = "Write the record (JSON) here.")
  Path out;

  @Override
  public Integer call() {
    PrintWriter stdout = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    List<String> specs = new ArrayList<>();
    try {
      if (modelOptions.policy != null) {
        throw new IllegalArgumentException("fidelity takes --policies (and --baseline), not --policy");
      }
      if (tokens < 1 || count < 1) {
        throw new IllegalArgumentException("--tokens " + tokens + " and --count " + count + " must be >= 1");
      }
      if ((promptsFile == null) == (tasks == null)) {
        throw new IllegalArgumentException("give either --task (with --length) or --prompts FILE.jsonl");
      }
      if (tasks != null && (lengths == null || lengths.isEmpty())) {
        throw new IllegalArgumentException("--task needs --length");
      }
      if (tasks != null) {
        tasks.forEach(Task::of);
      }
      Policy.parse(baseline);
      for (Policy p : Policy.parseList(policies)) {
        specs.add(p.spec());
      }
    } catch (IllegalArgumentException e) {  // PolicySpecException included
      err.println("error: " + e.getMessage());
      err.flush();
      return 2;
    }
    try (HfTokenCounter counter = HfTokenCounter.load(modelOptions.tokenizerDir())) {
      List<FidelityRunner.Prompt> prompts = promptsFile != null ? readPrompts(counter.tokenizer())
          : generatePrompts(counter);
      int longest = prompts.stream().mapToInt(p -> p.tokens().length).max().orElseThrow();
      int context = maxContext != null ? maxContext : longest + tokens;
      LOG.info("{} prompts, the longest {} tokens; {} continuation tokens each; context {}", prompts.size(), longest,
          tokens, context);
      FidelityRunner runner = new FidelityRunner(p -> engine(p, context), tokens, modelOptions.batch);
      Map<String, List<PromptComparison>> rows = runner.run(baseline, specs, prompts);
      List<FidelitySummary> summaries = summarize(rows);
      if (out != null) {
        writeRecord(out, context, prompts, runner, rows, summaries);
      }
      stdout.println("| policy | group | prompts | steps | mean KL | p50 KL | p90 KL | max KL | top-1 agree"
          + " | token agree | first div. median | first div. min |");
      stdout.println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
      for (FidelitySummary s : summaries) {
        stdout.printf(Locale.ROOT, "| %s | %s | %d | %d | %.3g | %.3g | %.3g | %.3g | %.4f | %.4f | %.1f | %d |%n",
            s.policy(), s.group(), s.prompts(), s.steps(), s.klMean(), s.klP50(), s.klP90(), s.klMax(),
            s.top1Agreement(), s.tokenAgreement(), s.firstDivergenceMedian(), s.firstDivergenceMin());
      }
      stdout.flush();
      return 0;
    } catch (IOException | RuntimeException e) {
      LOG.debug("fidelity failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }

  // Prefix caching off: every prompt is prefilled whole, as a first request is, under every policy.
  private Engine engine(String policySpec, int context) {
    return modelOptions.builder(context).optPolicy(Policy.parse(policySpec).withoutPrefixCache())
        .optPageTokens(pageTokens).build();
  }

  /** Per policy: one summary per group, then one over all prompts when there are several groups. */
  private static List<FidelitySummary> summarize(Map<String, List<PromptComparison>> rows) {
    List<FidelitySummary> out = new ArrayList<>();
    for (Map.Entry<String, List<PromptComparison>> e : rows.entrySet()) {
      Map<String, List<PromptComparison>> byGroup = new LinkedHashMap<>();
      for (PromptComparison c : e.getValue()) {
        byGroup.computeIfAbsent(c.group(), g -> new ArrayList<>()).add(c);
      }
      for (Map.Entry<String, List<PromptComparison>> g : byGroup.entrySet()) {
        out.add(FidelitySummary.of(e.getKey(), g.getKey(), g.getValue()));
      }
      if (byGroup.size() > 1) {
        out.add(FidelitySummary.of(e.getKey(), "all", e.getValue()));
      }
    }
    return out;
  }

  private static int[] chatIds(Tokenizer tokenizer, ChatTemplate template, String prompt) {
    // As the engine's encodeChat: the template renders one user message with the generation prompt.
    return tokenizer.encodeNoSpecial(template.render(List.of(ChatMessage.user(prompt)), true));
  }

  private ChatTemplate template() throws IOException {
    return ChatTemplate.load(modelOptions.tokenizerDir());
  }

  private List<FidelityRunner.Prompt> readPrompts(Tokenizer tokenizer) throws IOException {
    ChatTemplate template = template();
    ObjectMapper json = new ObjectMapper();
    List<FidelityRunner.Prompt> out = new ArrayList<>();
    try (BufferedReader r = Files.newBufferedReader(promptsFile, StandardCharsets.UTF_8)) {
      String line;
      int lineNo = 0;
      while ((line = r.readLine()) != null) {
        ++lineNo;
        if (line.isBlank()) {
          continue;
        }
        JsonNode n;
        try {
          n = json.readTree(line);
        } catch (IOException e) {
          throw new IllegalArgumentException(promptsFile + " line " + lineNo + " is not JSON: " + e.getMessage(), e);
        }
        if (!n.path("prompt").isTextual()) {
          throw new IllegalArgumentException(promptsFile + " line " + lineNo + " has no \"prompt\" string");
        }
        String id = n.path("id").asText("prompt-" + out.size());
        String group = n.has("task") ? n.get("task").asText() + (n.has("length") ? "/" + n.get("length").asInt() : "")
            : promptsFile.getFileName().toString();
        out.add(new FidelityRunner.Prompt(id, group, chatIds(tokenizer, template, n.get("prompt").asText())));
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException(promptsFile + " holds no prompts");
    }
    return out;
  }

  // Records of every (task, length), budgeted as eval does with the continuation in place of the
  // answer: prompt budget = length - template tokens - tokens - slack, shrunk by any overflow.
  private List<FidelityRunner.Prompt> generatePrompts(HfTokenCounter counter) throws IOException {
    ChatTemplate template = template();
    Tokenizer tokenizer = counter.tokenizer();
    if (haystack == null && !SyntheticModels.isSynthetic(modelOptions.model)
        && Files.isRegularFile(modelOptions.modelDir().resolve(EvalCommand.HELD_OUT_PROSE))) {
      haystack = modelOptions.modelDir().resolve(EvalCommand.HELD_OUT_PROSE);
    }
    TaskGenerator generator = new TaskGenerator(haystack == null ? null : Haystack.load(haystack), counter, depth);
    int templateTokens = chatIds(tokenizer, template, "").length;
    List<FidelityRunner.Prompt> out = new ArrayList<>();
    for (String name : tasks) {
      Task task = Task.of(name);
      for (int length : lengths) {
        int budget = length - templateTokens - tokens - SLACK_TOKENS;
        for (int attempt = 0; ; ++attempt) {
          if (budget < 1) {
            throw new IllegalArgumentException("task " + task + ": length " + length + " leaves no prompt budget after"
                + " the chat template (" + templateTokens + " tokens), " + tokens + " continuation tokens and "
                + SLACK_TOKENS + " of slack");
          }
          List<FidelityRunner.Prompt> cell = new ArrayList<>();
          int overflow = 0;
          for (int i = 0; i < count; ++i) {
            TaskRecord r;
            try {
              r = generator.generate(task, seed + i, budget);
            } catch (LengthTooSmallException e) {
              throw new IllegalArgumentException(e.getMessage() + " (the prompt budget of length " + length + ")", e);
            }
            int[] ids = chatIds(tokenizer, template, r.prompt());
            overflow = Math.max(overflow, ids.length + tokens + SLACK_TOKENS - length);
            cell.add(new FidelityRunner.Prompt(r.id(), task.id() + "/" + length, ids));
          }
          if (overflow <= 0 || attempt == 3) {
            out.addAll(cell);
            break;
          }
          budget -= overflow;
        }
      }
    }
    return out;
  }

  private void writeRecord(Path file, int context, List<FidelityRunner.Prompt> prompts, FidelityRunner runner,
      Map<String, List<PromptComparison>> rows, List<FidelitySummary> summaries) throws IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = PerfRecords.header(json.createObjectNode(), "fidelity", modelOptions.backend(),
        modelOptions.deviceIndex, "kvasir-bench " + String.join(" ", spec.commandLine().getParseResult().originalArgs()));
    ObjectNode config = root.putObject("configuration");
    config.put("model", modelOptions.model);
    config.put("device", modelOptions.deviceLabel());
    config.put("dtype", modelOptions.dtype == null ? "checkpoint default" : modelOptions.dtype.name());
    config.put("baseline", baseline);
    ArrayNode ps = config.putArray("policies");
    rows.keySet().forEach(ps::add);
    config.put("prefix_cache", false);
    config.put("page_tokens", pageTokens);
    config.put("max_batch", modelOptions.batch);
    config.put("max_context", context);
    config.put("tokens", tokens);
    config.put("sampling", "greedy, EOS ignored");
    config.put("kl", "KL(p_baseline || p_policy) in nats, per step, double from fp32 logits (stable log-softmax)");
    ObjectNode source = config.putObject("prompts");
    source.put("count", prompts.size());
    if (promptsFile != null) {
      source.put("file", promptsFile.toString());
    } else {
      ArrayNode t = source.putArray("tasks");
      tasks.forEach(t::add);
      ArrayNode l = source.putArray("lengths");
      lengths.forEach(l::add);
      source.put("per_cell", count);
      source.put("seed", seed);
      source.put("haystack", haystack == null ? null : haystack.toString());
      source.put("depth", depth);
      source.put("budget_rule", "prompt budget = length - template tokens - tokens - " + SLACK_TOKENS
          + " (shrunk further if a chat-rendered prompt + tokens + slack would exceed length)");
    }
    source.put("chat_template", "one user message with the generation prompt, as eval");
    config.put("baseline_self_agreement", runner.baselineSelfAgreement());
    ArrayNode results = root.putArray("results");
    for (FidelitySummary s : summaries) {
      s.putJson(results.addObject());
    }
    ObjectNode per = root.putObject("per_prompt");
    for (Map.Entry<String, List<PromptComparison>> e : rows.entrySet()) {
      ArrayNode a = per.putArray(e.getKey());
      for (PromptComparison c : e.getValue().subList(0, Math.min(PER_PROMPT_CAP, e.getValue().size()))) {
        a.addObject().put("id", c.id()).put("group", c.group()).put("prompt_tokens", c.promptTokens())
            .put("mean_kl", c.meanKl()).put("top1_agreement", c.top1Agreements() / (double) c.steps())
            .put("token_agreement", c.tokenAgreements() / (double) c.steps())
            .put("first_divergence", c.firstDivergence());
      }
    }
    json.writerWithDefaultPrettyPrinter().writeValue(file.toFile(), root);
  }
}
