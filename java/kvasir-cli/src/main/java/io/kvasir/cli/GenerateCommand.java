package io.kvasir.cli;

import io.kvasir.engine.Engine;
import io.kvasir.policy.Policy;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.GenerationStats;
import io.kvasir.engine.SamplingParams;
import io.kvasir.engine.SyntheticModels;
import io.kvasir.model.tokenizer.ChatMessage;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Devices;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.perf.PerfRecords;
import io.kvasir.perf.StepCost;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir generate}: one prompt through a model, streaming the text, then the numbers.
 * Exit code 0 on success, 1 when the model, prompt or device cannot be used (the message says
 * why), 2 for a malformed command line.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = "Generate from a prompt with a Hugging Face model directory or a synthetic model.")
final class GenerateCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(GenerateCommand.class);

  enum Device { cpu, cuda }

  enum WeightType { f32, bf16 }

  @Spec
  CommandSpec spec;

  @Option(names = "--model", paramLabel = "DIR|kvasir-ref|synthetic:NAME", defaultValue = "kvasir-ref",
      description = "A Hugging Face model directory; kvasir-ref (default: the trained reference model shipped in models/);"
          + " synthetic:<preset> (random weights on the device: llama3-8b, llama3-1b, qwen3-8b); or"
          + " tiny:<llama|qwen3|mistral|qwen2> (a small random checkpoint, written on first use).")
  String model;

  @Option(names = "--prompt", description = "The prompt text (needs the model's tokenizer).")
  String prompt;

  @Option(names = "--chat", description = "Render --prompt as a user message with the model's chat template.")
  boolean chat;

  @Option(names = "--system", description = "With --chat: a system message before the prompt.")
  String system;

  @Option(names = "--prompt-tokens", paramLabel = "N", description = "A prompt of N random token ids (from --seed).")
  Integer promptTokens;

  @Option(names = "--prompt-ids", paramLabel = "ID,ID,...", split = ",", description = "The prompt as token ids.")
  int[] promptIds;

  @Option(names = "--max-tokens", defaultValue = "128", description = "Most tokens to generate (default ${DEFAULT-VALUE}).")
  int maxTokens;

  @Option(names = "--temperature", defaultValue = "0", description = "0 is greedy (default ${DEFAULT-VALUE}).")
  float temperature;

  @Option(names = "--top-p", defaultValue = "1", description = "Nucleus sampling mass; 1 is off.")
  float topP;

  @Option(names = "--top-k", defaultValue = "0", description = "Keep the k most likely tokens; 0 is off.")
  int topK;

  @Option(names = "--min-p", defaultValue = "0", description = "Drop tokens below min_p times the top probability.")
  float minP;

  @Option(names = "--repetition-penalty", defaultValue = "1", description = "1 is off.")
  float repetitionPenalty;

  @Option(names = "--seed", defaultValue = "0", description = "Seed of sampling (and of --prompt-tokens and synthetic weights).")
  long seed;

  @Option(names = "--stop", description = "Stop when this text appears (repeatable).")
  List<String> stops;

  @Option(names = "--ignore-eos", description = "Keep generating past EOS.")
  boolean ignoreEos;

  @Option(names = "--device", defaultValue = "cpu", description = "cpu or cuda (default ${DEFAULT-VALUE}).")
  Device device;

  @Option(names = "--device-index", defaultValue = "0", description = "Which device of the backend.")
  int deviceIndex;

  @Option(names = "--dtype", description = "Weight and KV-cache storage: f32 or bf16 (default: bf16 unless the checkpoint is fp32).")
  WeightType dtype;

  @Option(names = "--max-context", defaultValue = "4096", description = "Tokens per sequence, prompt included (default ${DEFAULT-VALUE}).")
  int maxContext;

  @Option(names = "--tokenizer", paramLabel = "DIR", description = "A directory with tokenizer.json (for synthetic models).")
  Path tokenizer;

  @Option(names = "--logits-out", paramLabel = "FILE", description = "Write the logits of the last prompt position as float32 .npy.")
  Path logitsOut;

  @Option(names = "--greedy-ids", description = "Print a line 'ids: <id> <id> ...' with the generated token ids.")
  boolean greedyIds;

  @Option(names = "--batch", defaultValue = "1", description = "Run the prompt as this many sequences together"
      + " (seeds seed, seed+1, ...; for throughput measurements). The first one is printed.")
  int batch;

  @Option(names = "--n", paramLabel = "N", defaultValue = "1", description = "Draw N samples of the prompt (as the"
      + " OpenAI API's n); under --policy they share the prompt's KV pages, which are prefilled once. Each sample"
      + " is printed after the run, numbered; use --temperature > 0 for different samples.")
  int samples;

  @Option(names = "--roofline", description = "Measure the device's read bandwidth first and report decode speed"
      + " against its roofline (bytes one decode step must read / bandwidth).")
  boolean roofline;

  @Option(names = "--record", paramLabel = "FILE", description = "With --roofline: write the run as a perf record"
      + " (JSON: configuration, device, ceilings, figures) for docs/perf.")
  Path record;

  @Option(names = "--profile", description = "Time every stage of the CUDA steps (CUDA graphs off meanwhile) and"
      + " print the totals after the run.")
  boolean profile;

  @Option(names = "--no-cuda-graphs", description = "Launch every decode step's kernels instead of replaying CUDA graphs.")
  boolean noCudaGraphs;

  @Option(names = "--no-pdl", description = "Launch a CUDA step's kernels in plain stream order (no programmatic"
      + " dependent launch).")
  boolean noPdl;

  @Option(names = "--gemv-max-rows", paramLabel = "N", description = "CUDA bf16: steps of at most N tokens use"
      + " Kvasir's GEMV for projections, larger ones cuBLAS (0..16; default 8).")
  Integer gemvMaxRows;

  @Option(names = "--policy", paramLabel = "SPEC", description = "Cache policy: components joined by '+', each"
      + " name[:param=value,...] (full, quest:k=64 or quest:k_tokens=1024, prefix, bf16). Runs a paged cache with"
      + " continuous batching and prefix caching. Default: slot caches, no policy.")
  String policy;

  @Option(names = "--no-prefix-cache", description = "With --policy: do not share full pages across requests.")
  boolean noPrefixCache;

  @Option(names = "--kv-budget", paramLabel = "BYTES|TOKENS", description = "With --policy: KV memory, in bytes"
      + " (2GiB, 512MB) or tokens (65536tokens, 64Ktok); default: --batch sequences of --max-context tokens.")
  String kvBudget;

  @Option(names = "--page-tokens", defaultValue = "16", description = "With --policy: tokens per KV page (default ${DEFAULT-VALUE}).")
  int pageTokens;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    int given = (prompt != null ? 1 : 0) + (promptTokens != null ? 1 : 0) + (promptIds != null ? 1 : 0);
    if (given != 1) {
      err.println("error: give exactly one of --prompt, --prompt-tokens, --prompt-ids");
      return 2;
    }
    if ((chat || system != null) && prompt == null) {
      err.println("error: --chat and --system need --prompt");
      return 2;
    }
    Backend backend = device == Device.cuda ? Backend.CUDA : Backend.CPU;
    if (batch < 1) {
      err.println("error: --batch " + batch + " must be >= 1");
      return 2;
    }
    if (samples < 1 || (samples > 1 && (batch > 1 || logitsOut != null || roofline))) {
      err.println("error: --n " + samples + " must be >= 1, and above 1 goes with neither --batch, --logits-out"
          + " nor --roofline");
      return 2;
    }
    Engine.Builder builder = Engine.builder().setModel(model).optDevice(backend, deviceIndex).optMaxContext(maxContext)
        .optMaxBatch(Math.max(batch, samples)).optSyntheticSeed(seed);
    if (dtype != null) {
      builder.optDtype(dtype == WeightType.f32 ? DType.F32 : DType.BF16);
    }
    if (tokenizer != null) {
      builder.optTokenizer(tokenizer);
    }
    if ((noPrefixCache || kvBudget != null) && policy == null) {
      err.println("error: " + (noPrefixCache ? "--no-prefix-cache" : "--kv-budget") + " needs --policy");
      return 2;
    }
    if (policy != null) {
      try {
        Policy parsed = Policy.parse(policy);
        builder.optPolicy(noPrefixCache ? parsed.withoutPrefixCache() : parsed).optPageTokens(pageTokens);
        if (kvBudget != null) {
          builder.optKvBudget(kvBudget);
        }
      } catch (IllegalArgumentException e) {  // PolicySpecException included
        err.println("error: --policy: " + e.getMessage());
        return 2;
      }
    }
    try (Engine engine = builder.build()) {
      if (noCudaGraphs) {
        engine.setModelOption("cuda_graphs", 0);
      }
      if (noPdl) {
        engine.setModelOption("pdl", 0);
      }
      if (gemvMaxRows != null) {
        engine.setModelOption("gemv_max_rows", gemvMaxRows);
      }
      if (profile) {
        engine.setModelOption("profile", 1);
      }
      Roofline ceiling = null;
      if (roofline) {
        ceiling = PerfRecords.probe(backend, deviceIndex);
      }
      int[] ids = promptIds(engine);
      if (samples > 1) {
        SamplingParams sampling = new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
        GenerationRequest request = GenerationRequest.of(ids, maxTokens, sampling).withIgnoreEos(ignoreEos)
            .withStopStrings(stops == null ? List.of() : stops);
        List<GenerationResult> results = engine.generateSamples(request, samples);
        for (int i = 0; i < results.size(); ++i) {
          GenerationResult r = results.get(i);
          out.println("[sample " + (i + 1) + "/" + samples + "] " + (r.text() != null ? r.text()
              : Arrays.stream(r.tokens()).mapToObj(Integer::toString).collect(Collectors.joining(" "))));
          if (greedyIds) {
            out.println("ids: " + Arrays.stream(r.tokens()).mapToObj(Integer::toString).collect(Collectors.joining(" ")));
          }
        }
        out.printf(Locale.ROOT, "-- %s: %d prompt tokens, %d samples, %d tokens generated in all, TTFT %.1f ms%n",
            engine.modelName(), ids.length, samples, results.stream().mapToInt(r -> r.tokens().length).sum(),
            aggregate(results).ttftMillis());
        out.flush();
        return 0;
      }
      List<GenerationRequest> requests = new java.util.ArrayList<>();
      List<io.kvasir.engine.TokenListener> listeners = new java.util.ArrayList<>();
      for (int i = 0; i < batch; ++i) {
        SamplingParams sampling = new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed + i);
        requests.add(GenerationRequest.of(ids, maxTokens, sampling).withIgnoreEos(ignoreEos)
            .withPromptLogits(logitsOut != null && i == 0).withStopStrings(stops == null ? List.of() : stops));
        listeners.add(i > 0 ? null : (token, text) -> {
          out.print(text != null ? text : token + " ");
          out.flush();
        });
      }
      List<GenerationResult> results = engine.generateAll(requests, listeners);
      GenerationResult r = results.get(0);
      out.println();
      if (greedyIds) {
        out.println("ids: " + Arrays.stream(r.tokens()).mapToObj(Integer::toString).collect(Collectors.joining(" ")));
      }
      if (logitsOut != null) {
        Npy.writeFloat32(logitsOut, r.promptLogits());
      }
      GenerationStats s = aggregate(results);
      out.printf(Locale.ROOT, "-- %s: %d prompt tokens, %d generated (%s), TTFT %.1f ms, decode %.1f tokens/s, KV %d bytes%n",
          engine.modelName(), r.stats().promptTokens(), r.stats().generatedTokens(), r.finishReason().openAiName(),
          s.ttftMillis(), s.decodeTokensPerSecond(), s.kvBytes());
      if (batch > 1) {
        out.printf(Locale.ROOT, "-- batch %d: %.1f tokens/s in all, %.1f per sequence%n", batch,
            s.decodeTokensPerSecond(), s.decodeTokensPerSecond() / batch);
      }
      if (ceiling != null) {
        // A decode step reads every weight matrix once (the embedding only as a tied LM head) and
        // the sequence's K and V; at the mean context length of the decode.
        double meanContext = r.stats().promptTokens() + r.stats().generatedTokens() / 2.0;
        double stepBytes = new StepCost(engine.shape(), engine.weightBytes()).bytes(batch * meanContext);
        // A step of the batch yields one token per sequence.
        double rooflineTokens = batch * ceiling.readBytesPerS() / stepBytes;
        out.printf(Locale.ROOT, "-- roofline: %.2f GB per decode step / %.1f GB/s read = %.2f tokens/s; decode at %.1f%%%n",
            stepBytes / 1e9, ceiling.readBytesPerS() / 1e9, rooflineTokens,
            100 * s.decodeTokensPerSecond() / rooflineTokens);
        if (record != null) {
          PerfRecord.writeDecode(record, engine, ceiling, r, s, batch, stepBytes, rooflineTokens, String.join(" ",
              spec.commandLine().getParseResult().originalArgs()));
        }
      }
      if (profile) {
        out.print("-- profile (device ms per stage, all steps):\n" + engine.profile());
      }
      out.flush();
      return 0;
    } catch (IOException | RuntimeException e) {
      LOG.debug("generate failed", e);
      err.println("error: " + e.getMessage());
      err.flush();
      return 1;
    }
  }

  // The batch as one: TTFT of its earliest first token; decode from the moment every sequence
  // has its first token (prefill of the later sequences is not decode time) to the last token,
  // counting every token after each sequence's first.
  private static GenerationStats aggregate(List<GenerationResult> results) {
    GenerationStats first = results.get(0).stats();
    double ttft = Double.MAX_VALUE;
    double decodeStart = 0;
    double end = 0;
    int generated = 0;
    long kv = 0;
    for (GenerationResult x : results) {
      ttft = Math.min(ttft, x.stats().ttftMillis());
      decodeStart = Math.max(decodeStart, x.stats().ttftMillis());
      end = Math.max(end, x.stats().ttftMillis() + x.stats().decodeMillis());
      generated += x.stats().generatedTokens() - 1;
      kv += x.stats().kvBytes();
    }
    // decodeTokensPerSecond counts tokens after the first: add one back for the record's shape.
    return new GenerationStats(first.promptTokens(), generated + 1, ttft, end - decodeStart, kv);
  }

  private int[] promptIds(Engine engine) {
    if (promptIds != null) {
      return promptIds;
    }
    if (promptTokens != null) {
      if (promptTokens < 1) {
        throw new IllegalArgumentException("--prompt-tokens " + promptTokens + " must be >= 1");
      }
      return new SplittableRandom(seed).ints(promptTokens, 0, engine.shape().vocabSize()).toArray();
    }
    if (!engine.hasTokenizer()) {
      throw new IllegalArgumentException(model + " has no tokenizer.json: give --prompt-tokens or --prompt-ids"
          + (SyntheticModels.isSynthetic(model) ? ", or --tokenizer DIR" : ""));
    }
    if (chat) {
      List<ChatMessage> messages = new java.util.ArrayList<>();
      if (system != null) {
        messages.add(ChatMessage.system(system));
      }
      messages.add(ChatMessage.user(prompt));
      return engine.encodeChat(messages);
    }
    return engine.encode(prompt);
  }
}
