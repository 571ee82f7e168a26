package io.kvasir.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.bench.serve.ServeReport;
import io.kvasir.bench.serve.Slo;
import io.kvasir.bench.serve.Workload;
import io.kvasir.bench.serve.WorkloadSpec;
import io.kvasir.engine.Engine;
import io.kvasir.engine.EngineClock;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.SamplingParams;
import io.kvasir.engine.ServeResult;
import io.kvasir.engine.TimedRequest;
import io.kvasir.engine.TokenListener;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.perf.PerfRecords;
import io.kvasir.perf.StepCost;
import io.kvasir.policy.Policy;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir-bench serve}: an end-to-end serving benchmark. A seeded workload of random-token
 * prompts (optionally behind a shared prefix) runs through the engine's continuous batching,
 * offline (every request at once) or with Poisson arrivals; the summary gives throughput, TTFT,
 * TPOT, ITL and latency percentiles, the prefix-cache hit rate and, with {@code --roofline}, the
 * steps against their roofline. Exit 0 on success, 1 when the model, device or workload cannot
 * be used, 2 for a malformed command line.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = "Serving benchmark: random-token requests, offline or with Poisson arrivals, through the engine's"
        + " continuous batching (a cache policy: --policy, default full); throughput and TTFT/TPOT/ITL percentiles.")
final class ServeCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(ServeCommand.class);

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--no-prefix-cache", description = "Do not share full pages across requests.")
  boolean noPrefixCache;

  @Option(names = "--kv-budget", paramLabel = "BYTES|TOKENS", description = "KV memory of the paged cache, in bytes"
      + " (80GiB) or tokens (65536tokens); default: --max-batch sequences of --max-context tokens.")
  String kvBudget;

  @Option(names = "--page-tokens", defaultValue = "16", description = "Tokens per KV page (default ${DEFAULT-VALUE}).")
  int pageTokens;

  @Option(names = "--max-step-tokens", defaultValue = "2048", description = "Tokens one engine step computes at"
      + " most: decodes plus prefill chunks (default ${DEFAULT-VALUE}).")
  int maxStepTokens;

  @Option(names = "--max-context", paramLabel = "N", description = "Tokens per sequence (default: the longest prompt"
      + " plus --output-tokens).")
  Integer maxContext;

  @Option(names = "--requests", defaultValue = "64", description = "Requests in the workload (default ${DEFAULT-VALUE}).")
  int requests;

  @Option(names = "--prompt-min", defaultValue = "1024", description = "Fewest random prompt tokens (after the shared"
      + " prefix; default ${DEFAULT-VALUE}).")
  int promptMin;

  @Option(names = "--prompt-max", defaultValue = "8192", description = "Most random prompt tokens, inclusive; lengths"
      + " are uniform in between (default ${DEFAULT-VALUE}).")
  int promptMax;

  @Option(names = "--output-tokens", defaultValue = "256", description = "Tokens every request generates, EOS ignored"
      + " (default ${DEFAULT-VALUE}).")
  int outputTokens;

  @Option(names = "--rate", paramLabel = "R|inf", defaultValue = "inf", description = "Requests per second, Poisson"
      + " arrivals; inf (default): all at once (offline throughput).")
  String rate;

  @Option(names = "--shared-prefix", paramLabel = "TOKENS", defaultValue = "0", description = "Every prompt starts"
      + " with the same TOKENS random tokens; --prompt-min/--prompt-max then size the unique part (default 0).")
  int sharedPrefix;

  @Option(names = "--subsample", paramLabel = "K", description = "Run only the first K requests of the workload (the"
      + " same prompts as the full one's first K).")
  Integer subsample;

  @Option(names = "--seed", defaultValue = "0", description = "Seed of prompts, shared prefix and arrivals (default"
      + " ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--warmup", paramLabel = "N", defaultValue = "0", description = "First run N unrelated requests"
      + " (same prompt lengths, at most 16 output tokens), not counted (default ${DEFAULT-VALUE}).")
  int warmup;

  @Option(names = "--max-concurrency", paramLabel = "N", defaultValue = "0", description = "At most N requests in"
      + " flight, as vllm bench serve --max-concurrency (default 0: no cap).")
  int maxConcurrency;

  @Option(names = "--slo", paramLabel = "ttft_ms=..,tpot_ms=..", description = "Goodput objectives (ttft_ms, tpot_ms,"
      + " e2el_ms): requests/s meeting every one, as vllm bench serve --goodput.")
  String slo;

  @Option(names = "--roofline", description = "Measure the device's ceilings first and report the steps against"
      + " their roofline (weights + KV read at the read bandwidth, FLOPs at the GEMM rate).")
  boolean roofline;

  @Option(names = "--record", paramLabel = "FILE.json", description = "Write a perf record: configuration, device,"
      + " date, command, the summary and capped per-request samples.")
  Path record;

  @Option(names = "--export-workload", paramLabel = "FILE.json", description = "Write the exact requests (prompt"
      + " ids, output tokens, arrivals) for a peer to run (tools/peers/hf_generate_bench.py).")
  Path exportWorkload;

  private Slo objectives;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    double requestRate;
    Policy policy;
    try {
      requestRate = parseRate(rate);
      policy = Policy.parse(modelOptions.policy == null ? "full" : modelOptions.policy);
      if (noPrefixCache) {
        policy = policy.withoutPrefixCache();
      }
      if (subsample != null && subsample < 1) {
        throw new IllegalArgumentException("--subsample " + subsample + " must be >= 1");
      }
      if (warmup < 0) {
        throw new IllegalArgumentException("--warmup " + warmup + " must be >= 0");
      }
      if (maxConcurrency < 0) {
        throw new IllegalArgumentException("--max-concurrency " + maxConcurrency + " must be >= 0 (0: no cap)");
      }
      objectives = slo == null ? null : Slo.parse(slo);
      // The vocabulary is the model's; check the rest of the spec before loading anything.
      new WorkloadSpec(requests, promptMin, promptMax, outputTokens, sharedPrefix, requestRate, seed, 1);
    } catch (IllegalArgumentException e) {  // PolicySpecException included
      err.println("error: " + e.getMessage());
      err.flush();
      return 2;
    }
    int context = maxContext != null ? maxContext : sharedPrefix + promptMax + outputTokens;
    Engine.Builder builder;
    try {
      builder = modelOptions.builder(context).optPolicy(policy).optPageTokens(pageTokens)
          .optMaxStepTokens(maxStepTokens);
      if (kvBudget != null) {
        builder.optKvBudget(kvBudget);
      }
    } catch (IllegalArgumentException e) {
      err.println("error: " + e.getMessage());
      err.flush();
      return 2;
    }
    try (Engine engine = builder.build()) {
      WorkloadSpec ws = new WorkloadSpec(requests, promptMin, promptMax, outputTokens, sharedPrefix, requestRate, seed,
          engine.shape().vocabSize());
      Workload full = Workload.generate(ws);
      Workload workload = subsample != null ? full.first(subsample) : full;
      LOG.info("workload: {} requests, seed {}, prompts {} tokens in all ({}{}-{} each), {} output tokens each, {}",
          workload.requests().size(), seed, workload.promptTokens(), sharedPrefix > 0 ? sharedPrefix + " shared + " : "",
          promptMin, promptMax, outputTokens, ws.offline() ? "offline" : String.format(Locale.ROOT, "%.3f requests/s", requestRate));
      if (exportWorkload != null) {
        workload.export(exportWorkload);
        LOG.info("workload written to {}", exportWorkload);
      }
      Roofline ceiling = null;
      if (roofline) {
        ceiling = PerfRecords.probe(modelOptions.backend(), modelOptions.deviceIndex);
        LOG.info("roofline: read {} GB/s, bf16 GEMM {} TFLOP/s", String.format(Locale.ROOT, "%.1f",
            ceiling.readBytesPerS() / 1e9), String.format(Locale.ROOT, "%.1f", ceiling.gemmBf16FlopsPerS() / 1e12));
      }
      if (warmup > 0) {
        ServeResult w = engine.serve(timed(full.warmup(warmup)), null);
        LOG.info("warm-up: {} requests in {} s", warmup, String.format(Locale.ROOT, "%.2f", w.wallMillis() / 1000));
      }
      ServeResult result = engine.serve(timed(workload), progress(workload.requests().size()), maxConcurrency,
          EngineClock.SYSTEM);
      ServeReport report = ServeReport.of(result, new StepCost(engine.shape(), engine.weightBytes()), ceiling,
          objectives);
      String title = String.format(Locale.ROOT, "%s, %s, policy %s, %s", engine.modelName(),
          modelOptions.deviceLabel(), policy.spec(), ws.offline() ? "offline" : rate + " requests/s");
      out.print(report.table(title));
      out.flush();
      if (record != null) {
        writeRecord(engine, policy, workload, ceiling, report, result);
        LOG.info("record written to {}", record);
      }
      return 0;
    } catch (IOException | RuntimeException e) {
      LOG.debug("serve failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }

  static double parseRate(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT);
    if (t.equals("inf") || t.equals("infinity")) {
      return Double.POSITIVE_INFINITY;
    }
    double r;
    try {
      r = Double.parseDouble(t);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--rate " + text + ": a number of requests per second, or inf");
    }
    if (!(r > 0)) {
      throw new IllegalArgumentException("--rate " + text + " must be > 0 (or inf: offline)");
    }
    return r;
  }

  private static List<TimedRequest> timed(Workload w) {
    List<TimedRequest> out = new ArrayList<>();
    for (Workload.Request r : w.requests()) {
      GenerationRequest g = GenerationRequest.of(r.prompt(), r.outputTokens(), SamplingParams.greedy())
          .withIgnoreEos(true);
      out.add(TimedRequest.at(r.arrivalSeconds(), g));
    }
    return out;
  }

  // Logs about every tenth finished request (a request finishes at its last output token: EOS is ignored).
  private List<TokenListener> progress(int n) {
    AtomicInteger done = new AtomicInteger();
    int every = Math.max(1, n / 10);
    long t0 = System.nanoTime();
    List<TokenListener> listeners = new ArrayList<>();
    for (int i = 0; i < n; ++i) {
      int[] count = {0};
      listeners.add((token, text) -> {
        if (++count[0] == outputTokens) {
          int d = done.incrementAndGet();
          if (d % every == 0 || d == n) {
            LOG.info("{} of {} requests done ({} s)", d, n,
                String.format(Locale.ROOT, "%.1f", (System.nanoTime() - t0) / 1e9));
          }
        }
      });
    }
    return listeners;
  }

  private void writeRecord(Engine engine, Policy policy, Workload workload, Roofline ceiling, ServeReport report,
      ServeResult result) throws IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = PerfRecords.header(json.createObjectNode(), "serve", modelOptions.backend(),
        modelOptions.deviceIndex, "kvasir-bench " + String.join(" ", spec.commandLine().getParseResult().originalArgs()));
    ObjectNode config = root.putObject("configuration");
    config.put("model", engine.modelName());
    config.put("dtype", engine.shape().weightDtype().name());
    config.put("device", modelOptions.deviceLabel());
    config.put("policy", policy.spec());
    config.put("policy_resolved", policy.resolved());
    config.put("prefix_cache", policy.prefixCache());
    config.put("kv_budget", kvBudget == null ? "max_batch x max_context" : kvBudget);
    config.put("page_tokens", pageTokens);
    config.put("max_batch", modelOptions.batch);
    config.put("max_step_tokens", maxStepTokens);
    config.put("max_context", engine.maxContext());
    config.put("weight_bytes", engine.weightBytes());
    config.put("kv_bytes_per_token", engine.shape().kvBytesPerToken());
    WorkloadSpec ws = workload.spec();
    ObjectNode w = root.putObject("workload");
    w.put("seed", ws.seed());
    w.put("rule", "SplittableRandom(seed) split into prefix, prompt and arrival streams (Workload.java)");
    w.put("requests", workload.requests().size());
    w.put("workload_requests", requests);
    if (subsample != null) {
      w.put("subsample", subsample);
    }
    w.put("prompt_min", ws.promptMin());
    w.put("prompt_max", ws.promptMax());
    w.put("shared_prefix_tokens", ws.sharedPrefixTokens());
    w.put("output_tokens", ws.outputTokens());
    if (ws.offline()) {
      w.putNull("rate");
    } else {
      w.put("rate", ws.rate());
    }
    if (maxConcurrency > 0) {
      w.put("max_concurrency", maxConcurrency);
    } else {
      w.putNull("max_concurrency");
    }
    w.put("ignore_eos", true);
    w.put("sampling", "greedy");
    w.put("warmup_requests", warmup);
    w.put("prompt_tokens", workload.promptTokens());
    if (ceiling != null) {
      ObjectNode c = root.putObject("ceilings");
      c.put("read_bytes_per_s", ceiling.readBytesPerS());
      c.put("copy_bytes_per_s", ceiling.copyBytesPerS());
      c.put("gemm_bf16_flops_per_s", ceiling.gemmBf16FlopsPerS());
    }
    report.putJson(root.putObject("results"));
    // Per-request samples; without a concurrency cap a request starts when it arrives.
    List<GenerationResult> rs = result.results();
    ServeReport.putSamples(root.putObject("samples"), rs,
        rs.stream().mapToDouble(r -> r.stats().arrivalMillis()).toArray());
    json.writerWithDefaultPrettyPrinter().writeValue(record.toFile(), root);
  }
}
