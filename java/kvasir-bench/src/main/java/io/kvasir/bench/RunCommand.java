package io.kvasir.bench;

import io.kvasir.bench.serve.BenchWorkload;
import io.kvasir.bench.serve.LengthSpec;
import io.kvasir.bench.serve.LengthsFile;
import io.kvasir.bench.serve.ProgressLog;
import io.kvasir.bench.serve.ServeReport;
import io.kvasir.bench.serve.Slo;
import io.kvasir.bench.serve.Workload;
import io.kvasir.bench.serve.Workloads;
import io.kvasir.engine.Engine;
import io.kvasir.engine.EngineClock;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.SamplingParams;
import io.kvasir.engine.ServeResult;
import io.kvasir.engine.TimedRequest;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.perf.PerfRecords;
import io.kvasir.perf.StepCost;
import io.kvasir.policy.Policy;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir-bench run}: the same workloads (same prompts, seeds and arrivals) under each cache
 * policy in turn, on one model; one perf record per (workload, policy) and a summary.json index
 * (docs/benchmarks.md, "Policies side by side"). One engine per policy, the previous one closed
 * first. Exit 0 when every (workload, policy) ran, 1 when one failed (the others still run and
 * the summary says which), 2 for a malformed command line.
 */
@Command(name = "run", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Policies side by side: the same workloads (offline, online, long-gen, shared-prefix, rag, pp-tg)"
        + " under each policy of --policies, one JSON record per (workload, policy) and summary.json in --out.")
final class RunCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(RunCommand.class);
  static final List<String> WORKLOADS = List.of("offline", "online", "long-gen", "shared-prefix", "rag", "pp-tg");

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--policies", paramLabel = "SPECS", description = "Cache policies separated by ';' (\"full;quest:k=64\");"
      + " default: --policy, else full.")
  String policies;

  @Option(names = "--workload", paramLabel = "NAME", split = ",", required = true, description = "Workloads, repeatable"
      + " or comma-separated: offline, online, long-gen, shared-prefix, rag, pp-tg.")
  List<String> workloads;

  @Option(names = "--requests", paramLabel = "N", description = "Requests per workload (default 64; with"
      + " --lengths-file: its rows).")
  Integer requests;

  @Option(names = "--prompt-len", paramLabel = "N|A:B", description = "Prompt tokens, fixed or uniform in [A, B], for"
      + " every request workload (default per workload: offline/online 1024:8192, long-gen 128, shared-prefix 128:512"
      + " after the prefix).")
  String promptLen;

  @Option(names = "--output-len", paramLabel = "N|A:B", description = "Output tokens, fixed or uniform (default per"
      + " workload: 256; long-gen 4096; rag 128).")
  String outputLen;

  @Option(names = "--lengths-file", paramLabel = "FILE", description = "(prompt, output) token lengths: CSV lines"
      + " prompt,output or JSON lines {\"prompt_tokens\": N, \"output_tokens\": M}; request i takes row i mod rows.")
  Path lengthsFile;

  @Option(names = "--rates", paramLabel = "R1,R2", split = ",", description = "Request rates (requests/s, Poisson) of"
      + " the online workload: one record per rate.")
  List<Double> rates;

  @Option(names = "--max-concurrency", paramLabel = "N", description = "At most N requests in flight (as vllm bench"
      + " serve --max-concurrency); default: no cap.")
  Integer maxConcurrency;

  @Option(names = "--shared-prefix", paramLabel = "TOKENS", defaultValue = "4096", description = "The shared-prefix"
      + " workload's common prefix (default ${DEFAULT-VALUE}).")
  int sharedPrefix;

  @Option(names = "--rag-docs", paramLabel = "K", defaultValue = "8", description = "Documents per RAG prompt"
      + " (default ${DEFAULT-VALUE}).")
  int ragDocs;

  @Option(names = "--rag-doc-len", paramLabel = "D", defaultValue = "512", description = "Tokens per document"
      + " (default ${DEFAULT-VALUE}).")
  int ragDocLen;

  @Option(names = "--rag-pool", paramLabel = "P", defaultValue = "32", description = "Documents in the shared pool"
      + " (default ${DEFAULT-VALUE}).")
  int ragPool;

  @Option(names = "--rag-question-len", paramLabel = "Q", defaultValue = "32", description = "Question tokens after"
      + " the documents (default ${DEFAULT-VALUE}).")
  int ragQuestionLen;

  @Option(names = "--pp", paramLabel = "N,..", split = ",", defaultValue = "512,2048,8192", description = "pp-tg:"
      + " prompt lengths for prefill speed, batch 1 (default ${DEFAULT-VALUE}).")
  int[] pp;

  @Option(names = "--tg", paramLabel = "CTX,..", split = ",", defaultValue = "512,2048,8192", description = "pp-tg:"
      + " contexts at which decode speed is measured (default ${DEFAULT-VALUE}).")
  int[] tg;

  @Option(names = "--tg-batch", paramLabel = "B,..", split = ",", defaultValue = "1", description = "pp-tg: decode"
      + " batch sizes (default ${DEFAULT-VALUE}; --batch is the engine's maximum batch).")
  int[] tgBatch;

  @Option(names = "--tg-tokens", paramLabel = "N", defaultValue = "64", description = "pp-tg: tokens each sequence"
      + " decodes per tg cell (default ${DEFAULT-VALUE}).")
  int tgTokens;

  @Option(names = "--slo", paramLabel = "ttft_ms=..,tpot_ms=..", description = "Goodput objectives (ttft_ms, tpot_ms,"
      + " e2el_ms): requests/s meeting every one, as vllm bench serve --goodput.")
  String slo;

  @Option(names = "--seed", defaultValue = "0", description = "Seed of every workload (default ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--warmup", paramLabel = "N", defaultValue = "0", description = "N unrelated requests on each"
      + " policy's engine before its first workload, not counted (default ${DEFAULT-VALUE}).")
  int warmup;

  @Option(names = "--no-prefix-cache", description = "Do not share full pages across requests.")
  boolean noPrefixCache;

  @Option(names = "--kv-budget", paramLabel = "BYTES|TOKENS", description = "KV memory of the paged cache (80GiB,"
      + " 65536tokens); default: what the largest workload holds at once.")
  String kvBudget;

  @Option(names = "--page-tokens", defaultValue = "16", description = "Tokens per KV page (default ${DEFAULT-VALUE}).")
  int pageTokens;

  @Option(names = "--max-step-tokens", defaultValue = "2048", description = "Tokens one engine step computes at most"
      + " (default ${DEFAULT-VALUE}).")
  int maxStepTokens;

  @Option(names = "--max-context", paramLabel = "N", description = "Tokens per sequence (default: the longest any"
      + " workload needs).")
  Integer maxContext;

  @Option(names = "--roofline", description = "Measure the device's ceilings first; records report the steps against"
      + " their roofline.")
  boolean roofline;

  @Option(names = "--progress-seconds", paramLabel = "S", defaultValue = "5", description = "Least time between"
      + " progress lines (default ${DEFAULT-VALUE}).")
  double progressSeconds;

  @Option(names = "--out", paramLabel = "DIR", required = true, description = "Where the records and summary.json go.")
  Path out;

  /** What runs: the parsed command line. */
  record Plan(List<Policy> policies, List<String> workloads, LengthsFile lengths, Slo slo, PpTgRunner ppTg) {}

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    Plan plan;
    try {
      plan = plan();
    } catch (IllegalArgumentException | IOException e) {  // PolicySpecException included
      err.println("error: " + e.getMessage());
      err.flush();
      return 2;
    }
    try {
      Files.createDirectories(out);
    } catch (IOException e) {
      err.println("error: cannot create " + out + ": " + e.getMessage());
      err.flush();
      return 1;
    }
    String date = LocalDate.now(ZoneOffset.UTC).toString();
    String command = command(spec.commandLine().getParseResult().originalArgs());
    RunRecords records = new RunRecords(out, date, command, modelOptions, this, plan);
    Roofline ceiling = null;
    if (roofline) {
      try {
        ceiling = PerfRecords.probe(modelOptions.backend(), modelOptions.deviceIndex);
      } catch (RuntimeException e) {
        err.println("error: roofline probe: " + e.getMessage());
        err.flush();
        return 1;
      }
    }
    boolean failed = false;
    for (Policy policy : plan.policies()) {
      failed |= !runPolicy(plan, policy, records, ceiling);
    }
    try {
      records.writeSummary();
    } catch (IOException | RuntimeException e) {
      err.println("error: summary: " + e.getMessage());
      failed = true;
    }
    PrintWriter stdout = spec.commandLine().getOut();
    stdout.print(records.table());
    stdout.flush();
    err.flush();
    return failed ? 1 : 0;
  }

  /**
   * The command line that reproduces the run, as kvasir-bench: the arguments after "run" (under
   * {@code kvasir bench run} the original arguments start with "bench").
   */
  static String command(List<String> originalArgs) {
    int at = originalArgs.indexOf("run");
    List<String> rest = originalArgs.subList(at + 1, originalArgs.size());
    StringBuilder b = new StringBuilder("kvasir-bench run");
    for (String a : rest) {
      b.append(' ').append(a.matches("[A-Za-z0-9_./:=,@+%-]+") ? a : "'" + a.replace("'", "'\\''") + "'");
    }
    return b.toString();
  }

  Plan plan() throws IOException {
    List<Policy> ps = Policy.parseList(policies != null ? policies
        : modelOptions.policy != null ? modelOptions.policy : "full");
    if (noPrefixCache) {
      ps = ps.stream().map(Policy::withoutPrefixCache).toList();
    }
    Set<String> names = new LinkedHashSet<>();
    for (String w : workloads) {
      String n = w.strip().toLowerCase(Locale.ROOT);
      if (!WORKLOADS.contains(n)) {
        throw new IllegalArgumentException("--workload " + w + ": one of " + String.join(", ", WORKLOADS));
      }
      names.add(n);
    }
    if (names.contains("online") && (rates == null || rates.isEmpty())) {
      throw new IllegalArgumentException("the online workload needs --rates r1,r2,... (requests/s)");
    }
    if (rates != null) {
      for (double r : rates) {
        if (!(r > 0) || Double.isInfinite(r)) {
          throw new IllegalArgumentException("--rates: " + r + " must be a finite number of requests/s > 0");
        }
      }
    }
    if (maxConcurrency != null && maxConcurrency < 1) {
      throw new IllegalArgumentException("--max-concurrency " + maxConcurrency + " must be >= 1");
    }
    if (requests != null && requests < 1) {
      throw new IllegalArgumentException("--requests " + requests + " must be >= 1");
    }
    if (warmup < 0 || tgTokens < 1 || !(progressSeconds >= 0)) {
      throw new IllegalArgumentException("--warmup must be >= 0, --tg-tokens >= 1, --progress-seconds >= 0");
    }
    if (promptLen != null) {
      LengthSpec.parse(promptLen);
    }
    if (outputLen != null) {
      LengthSpec.parse(outputLen);
    }
    if (names.contains("rag")) {
      new BenchWorkload.Rag(ragDocs, ragDocLen, ragPool, ragQuestionLen);
    }
    for (int[] list : new int[][] {pp, tg, tgBatch}) {
      for (int v : list) {
        if (v < 1) {
          throw new IllegalArgumentException("--pp, --tg and --tg-batch take values >= 1, not " + v);
        }
      }
    }
    LengthsFile file = lengthsFile == null ? null : LengthsFile.read(lengthsFile);
    Slo s = slo == null ? null : Slo.parse(slo);
    PpTgRunner ppTg = names.contains("pp-tg") ? new PpTgRunner(pp, tg, tgBatch, tgTokens, seed) : null;
    return new Plan(ps, List.copyOf(names), file, s, ppTg);
  }

  int requestCount(LengthsFile file) {
    return requests != null ? requests : file != null ? file.size() : 64;
  }

  LengthSpec promptSpec(String workload) {
    if (promptLen != null) {
      return LengthSpec.parse(promptLen);
    }
    return switch (workload) {
      case "long-gen" -> LengthSpec.fixed(128);
      case "shared-prefix" -> new LengthSpec(128, 512);
      default -> new LengthSpec(1024, 8192);
    };
  }

  LengthSpec outputSpec(String workload) {
    if (outputLen != null) {
      return LengthSpec.parse(outputLen);
    }
    return switch (workload) {
      case "long-gen" -> LengthSpec.fixed(4096);
      case "rag" -> LengthSpec.fixed(128);
      default -> LengthSpec.fixed(256);
    };
  }

  /** The request workloads of the plan, in order (online once per rate). */
  List<BenchWorkload> requestWorkloads(Plan plan, int vocab) {
    List<BenchWorkload> list = new ArrayList<>();
    int n = requestCount(plan.lengths());
    for (String w : plan.workloads()) {
      switch (w) {
        case "offline", "long-gen" -> list.add(Workloads.standard(w, w, n, promptSpec(w), outputSpec(w), plan.lengths(),
            0, Double.POSITIVE_INFINITY, seed, vocab));
        case "shared-prefix" -> list.add(Workloads.standard(w, w, n, promptSpec(w), outputSpec(w), plan.lengths(),
            sharedPrefix, Double.POSITIVE_INFINITY, seed, vocab));
        case "online" -> {
          for (double r : rates) {
            list.add(Workloads.standard(w, Workloads.onlineLabel(r), n, promptSpec(w), outputSpec(w), plan.lengths(), 0,
                r, seed, vocab));
          }
        }
        case "rag" -> list.add(Workloads.rag(n, new BenchWorkload.Rag(ragDocs, ragDocLen, ragPool, ragQuestionLen),
            outputSpec(w), seed, vocab));
        default -> { }  // pp-tg runs on its own
      }
    }
    return list;
  }

  // Upper bounds of the plan's needs, from the specs (the drawn lengths depend on the vocabulary).
  private int[] contextAndSequences(String w, LengthsFile file) {
    int seqs = Math.min(requestCount(file), modelOptions.batch);
    if (maxConcurrency != null) {
      seqs = Math.min(seqs, maxConcurrency);
    }
    int prompt;
    int output = outputSpec(w).max();
    if (w.equals("rag")) {
      prompt = ragDocs * ragDocLen + ragQuestionLen;
    } else if (file != null) {
      prompt = file.pairs().stream().mapToInt(LengthsFile.Pair::promptTokens).max().orElse(1);
      output = file.pairs().stream().mapToInt(LengthsFile.Pair::outputTokens).max().orElse(1);
    } else {
      prompt = promptSpec(w).max();
    }
    if (w.equals("shared-prefix")) {
      prompt += sharedPrefix;
    }
    return new int[] {prompt + output, seqs};
  }

  /** Tokens of whole pages one sequence of {@code tokens} may hold (one page of slack). */
  static long pagedTokens(int tokens, int pageTokens) {
    return ((long) (tokens + pageTokens - 1) / pageTokens + 1) * pageTokens;
  }

  /** The engine of one policy, sized for every workload of the plan. */
  Engine.Builder engineBuilder(Plan plan, Policy policy) {
    int context = 2;
    long budget = 0;
    for (String w : plan.workloads()) {
      if (w.equals("pp-tg")) {
        context = Math.max(context, plan.ppTg().maxContext());
        budget = Math.max(budget, plan.ppTg().budgetTokens(pageTokens));
        continue;
      }
      int[] cs = contextAndSequences(w, plan.lengths());
      context = Math.max(context, cs[0]);
      budget = Math.max(budget, cs[1] * pagedTokens(cs[0], pageTokens));
    }
    if (warmup > 0) {
      budget = Math.max(budget, Math.min(warmup, modelOptions.batch) * pagedTokens(warmupPrompt(context) + 16,
          pageTokens));
    }
    int ctx = maxContext != null ? maxContext : context;
    int batch = Math.max(modelOptions.batch, plan.ppTg() != null ? plan.ppTg().maxBatch() : 1);
    Engine.Builder b = modelOptions.builder(ctx).optMaxBatch(batch).optPolicy(policy).optPageTokens(pageTokens)
        .optMaxStepTokens(maxStepTokens);
    b.optKvBudget(kvBudget != null ? kvBudget : budget + "tokens");
    return b;
  }

  private static int warmupPrompt(int context) {
    return Math.max(1, Math.min(1024, context - 18));
  }

  // Builds the policy's engine and runs every workload on it; false when something failed.
  private boolean runPolicy(Plan plan, Policy policy, RunRecords records, Roofline ceiling) {
    Engine engine;
    try {
      engine = engineBuilder(plan, policy).build();
    } catch (RuntimeException e) {
      LOG.error("policy {}: the engine could not be built: {}", policy.spec(), e.getMessage());
      for (String w : plan.workloads()) {
        if (w.equals("online")) {
          for (double r : rates) {
            records.failed(Workloads.onlineLabel(r), w, r, policy, e);
          }
        } else {
          records.failed(w, w, Double.POSITIVE_INFINITY, policy, e);
        }
      }
      return false;
    }
    boolean ok = true;
    try (engine) {
      LOG.info("policy {}: {} pages of {} tokens", policy.spec(), engine.kvPages(), pageTokens);
      int vocab = engine.shape().vocabSize();
      List<BenchWorkload> list = requestWorkloads(plan, vocab);
      if (warmup > 0) {
        BenchWorkload w = Workloads.standard("warmup", "warmup", warmup, new LengthSpec(1,
            warmupPrompt(engine.maxContext())), LengthSpec.fixed(16), null, 0, Double.POSITIVE_INFINITY,
            ~seed * 0x9E3779B97F4A7C15L, vocab);
        engine.serve(timed(w), null, 0, EngineClock.SYSTEM);
      }
      StepCost cost = new StepCost(engine.shape(), engine.weightBytes());
      int next = 0;
      for (String name : plan.workloads()) {
        // Every workload starts with a cold prefix cache: the online workloads reuse the offline
        // prompts (one seed rule), which would otherwise all be cache hits.
        engine.clearPrefixCache();
        if (name.equals("pp-tg")) {
          try {
            PpTgRunner.Result r = plan.ppTg().run(engine, "pp-tg / " + policy.spec());
            records.ppTg(engine, policy, plan, r, ceiling);
          } catch (IOException | RuntimeException e) {
            LOG.error("pp-tg under {} failed: {}", policy.spec(), e.getMessage());
            LOG.debug("pp-tg failed", e);
            records.failed("pp-tg", "pp-tg", Double.POSITIVE_INFINITY, policy, e);
            ok = false;
          }
          continue;
        }
        int count = name.equals("online") ? rates.size() : 1;
        for (int k = 0; k < count; ++k) {
          BenchWorkload w = list.get(next++);
          engine.clearPrefixCache();
          try {
            ProgressLog progress = new ProgressLog(w.label() + " / " + policy.spec(), w.requests().size(),
                progressSeconds, System::nanoTime);
            List<Integer> outs = w.requests().stream().map(Workload.Request::outputTokens).toList();
            ServeResult result = engine.serve(timed(w), progress.listeners(outs), maxConcurrency == null ? 0
                : maxConcurrency, EngineClock.SYSTEM);
            ServeReport report = ServeReport.of(result, cost, ceiling, plan.slo());
            records.serve(engine, policy, plan, w, ceiling, report, result);
          } catch (IOException | RuntimeException e) {
            LOG.error("{} under {} failed: {}", w.label(), policy.spec(), e.getMessage());
            LOG.debug("workload failed", e);
            records.failed(w.label(), w.name(), w.rate(), policy, e);
            ok = false;
          }
        }
      }
    } catch (RuntimeException e) {
      LOG.error("policy {} failed: {}", policy.spec(), e.getMessage());
      LOG.debug("policy failed", e);
      records.failed("*", "*", Double.POSITIVE_INFINITY, policy, e);
      ok = false;
    }
    return ok;
  }

  static List<TimedRequest> timed(BenchWorkload w) {
    List<TimedRequest> list = new ArrayList<>();
    for (Workload.Request r : w.requests()) {
      list.add(TimedRequest.at(r.arrivalSeconds(), GenerationRequest.of(r.prompt(), r.outputTokens(),
          SamplingParams.greedy()).withIgnoreEos(true)));
    }
    return list;
  }
}
