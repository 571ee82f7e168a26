package io.kvasir.engine;

import io.kvasir.cache.KvBudget;
import io.kvasir.cache.KvCacheManager;
import io.kvasir.cache.PageLayout;
import io.kvasir.cache.PagePool;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.DeviceCount;
import io.kvasir.nativeapi.Devices;
import io.kvasir.nativeapi.KvCache;
import io.kvasir.nativeapi.Model;
import io.kvasir.model.tokenizer.ChatMessage;
import io.kvasir.model.tokenizer.Tokenizer;
import io.kvasir.nativeapi.ModelShape;
import io.kvasir.nativeapi.PagedKvCache;
import io.kvasir.policy.Policy;
import io.kvasir.policy.spi.CachePolicy;
import io.kvasir.sched.SchedulerConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A model on a device with its KV cache, ready to generate.
 *
 * <pre>{@code
 * try (Engine e = Engine.builder().setModel("path/to/model").optDevice(Backend.CUDA, 0).build()) {
 *   GenerationResult r = e.generate(GenerationRequest.of(e.encode("Hello"), 64, SamplingParams.greedy()));
 * }
 * }</pre>
 *
 * <p>Closing releases the cache, the model and the tokenizer: all native and device memory.
 * Generation calls are serialized (one batch runs at a time). While an {@link EngineLoop} runs on
 * the engine, those calls throw {@link IllegalStateException}: the loop owns the paged cache.
 */
public final class Engine implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(Engine.class);

  private final String modelName;
  private final Model model;
  private final KvCache cache;
  private final TextCodec codec;  // null: token ids only
  private final int[] eosIds;
  private final int maxStepTokens;
  private final AtomicLong requestIds = new AtomicLong(1);
  private final Paged paged;  // null: no cache policy, slot caches (static batching)
  private EngineLoop loop;  // guarded by this: the running EngineLoop, which owns the pages

  /**
   * The paged cache of an engine built with a cache policy: pages, their manager (which keeps the
   * prefix cache across calls) and the policy.
   */
  private record Paged(PagedKvCache cache, KvCacheManager kv, CachePolicy policy, SchedulerConfig config) {}

  private Engine(String modelName, Model model, KvCache cache, TextCodec codec, int[] eosIds, int maxStepTokens,
      Paged paged) {
    this.paged = paged;
    this.modelName = modelName;
    this.model = model;
    this.cache = cache;
    this.codec = codec;
    this.eosIds = eosIds;
    this.maxStepTokens = maxStepTokens;
  }

  /**
   * The directory a model name stands for: {@code kvasir-ref} (see {@link ReferenceModel}),
   * {@code tiny:<architecture>} (written on first use, see {@link TinyModels}) or a path.
   * Synthetic models have no directory.
   *
   * @throws IllegalArgumentException for a synthetic model, or when kvasir-ref cannot be found
   */
  public static Path modelDirectory(String model) throws IOException {
    if (SyntheticModels.isSynthetic(model)) {
      throw new IllegalArgumentException(model + " is synthetic: it has no model directory");
    }
    return TinyModels.isTiny(model) ? TinyModels.resolve(model)
        : ReferenceModel.isReference(model) ? ReferenceModel.resolve() : Path.of(model);
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The model directory or synthetic preset the engine was built from. */
  public String modelName() {
    return modelName;
  }

  public ModelShape shape() {
    return model.shape();
  }

  /** Tokens one sequence may hold: prompt plus generated. */
  public int maxContext() {
    return cache.capacity();
  }

  /** Sequences one batch may hold (under a policy: sequences running at once). */
  public int maxBatch() {
    return paged != null ? paged.config().maxRunning() : cache.slots();
  }

  public long weightBytes() {
    return model.weightBytes();
  }

  /** Pages of the paged cache (0 without a cache policy). */
  public int kvPages() {
    return paged != null ? paged.cache().pages() : 0;
  }

  /** Device bytes of one page of the paged cache (0 without a cache policy). */
  public long kvPageBytes() {
    return paged != null ? paged.cache().bytes() / paged.cache().pages() : 0;
  }

  /** Whether the engine's cache policy shares full pages across requests (false without a policy). */
  public boolean prefixCaching() {
    return paged != null && paged.kv().prefixCaching();
  }

  /**
   * Under a cache policy, forgets every prefix the cache holds, so the next requests compute their
   * prompts from scratch (a benchmark's workloads start cold); without a policy, nothing to do.
   */
  public synchronized void clearPrefixCache() {
    requireNoLoop();
    if (paged != null) {
      paged.kv().clearPrefixCache();
    }
  }

  /** Device memory of the KV caches: the slot cache, plus the paged cache under a policy. */
  public long kvCacheBytes() {
    return cache.bytes() + (paged != null ? paged.cache().bytes() : 0);
  }

  /**
   * Sets a runtime option of the model (see {@link Model#setOption}): {@code cuda_graphs},
   * {@code gemv_max_rows}, {@code profile}. Options tune speed or diagnostics, never results beyond rounding.
   */
  public synchronized void setModelOption(String name, long value) {
    requireNoLoop();
    model.setOption(name, value);
  }

  /** Per-stage device times gathered while the {@code profile} option was on (a text table). */
  public synchronized String profile() {
    requireNoLoop();
    return model.profile();
  }

  /** Whether text can be encoded and decoded (the model directory has a tokenizer). */
  public boolean hasTokenizer() {
    return codec != null;
  }

  /** The model's tokenizer. */
  public TextCodec tokenizer() {
    if (codec == null) {
      throw new IllegalStateException(modelName + " has no tokenizer: give prompts as token ids");
    }
    return codec;
  }

  public int[] encode(String text) {
    return tokenizer().encode(text);
  }

  /**
   * The prompt ids of a conversation rendered by the model's chat template with the generation
   * prompt appended (the template supplies BOS; no special tokens are added on top).
   */
  public int[] encodeChat(List<ChatMessage> messages) {
    return tokenizer().encodeChat(messages);
  }

  /** Runs one request to completion. */
  public GenerationResult generate(GenerationRequest request) {
    return generate(request, null);
  }

  /** Runs one request, streaming each token to the listener. */
  public GenerationResult generate(GenerationRequest request, TokenListener listener) {
    List<TokenListener> listeners = new ArrayList<>();
    listeners.add(listener);
    return generateAll(List.of(request), listeners).get(0);
  }

  /**
   * Runs requests together, {@link #maxBatch()} at a time, each with its own listener (the list
   * may be null, or hold nulls).
   */
  public synchronized List<GenerationResult> generateAll(List<GenerationRequest> requests,
      List<TokenListener> listeners) {
    requireNoLoop();
    Objects.requireNonNull(requests, "requests");
    if (listeners != null && listeners.size() != requests.size()) {
      throw new IllegalArgumentException(listeners.size() + " listeners for " + requests.size() + " requests");
    }
    if (paged != null) {
      PagedRun run = new PagedRun(model, paged.cache(), paged.kv(), paged.policy(), paged.config(), codec, eosIds);
      return run.run(requests, listeners, requestIds.getAndAdd(requests.size()));
    }
    BatchRun run = new BatchRun(model, cache, codec, eosIds, maxStepTokens);
    List<GenerationResult> out = new ArrayList<>();
    for (int from = 0; from < requests.size(); from += cache.slots()) {
      int to = Math.min(requests.size(), from + cache.slots());
      long firstId = requestIds.getAndAdd(to - from);
      out.addAll(run.run(requests.subList(from, to), listeners == null ? null : listeners.subList(from, to), firstId));
    }
    return out;
  }

  /**
   * Serves requests that arrive over time (online benchmarks): each is scheduled once its arrival
   * offset has passed since the start of the call, joining the running batch (continuous
   * batching); while nothing has arrived and nothing runs, the call sleeps. Each listener (the
   * list may be null, or hold nulls) streams its request's tokens. Tokens are those
   * {@link #generateAll} gives for the same requests: only timing depends on arrival.
   *
   * @throws IllegalStateException when the engine has no cache policy (slot caches batch statically)
   */
  public ServeResult serve(List<TimedRequest> requests, List<TokenListener> listeners) {
    return serve(requests, listeners, EngineClock.SYSTEM);
  }

  /** As {@link #serve(List, List)} on a given clock (tests inject one that never sleeps). */
  public ServeResult serve(List<TimedRequest> requests, List<TokenListener> listeners, EngineClock clock) {
    return serve(requests, listeners, 0, clock);
  }

  /**
   * As {@link #serve(List, List, EngineClock)} with at most {@code maxConcurrency} requests in
   * flight (0: no cap), as {@code vllm bench serve --max-concurrency}: a request that has arrived
   * waits until fewer than that many are handed over and unfinished. Such a request's stats count
   * from its hand-over (the later of its arrival and the finish that freed its slot), as vLLM's
   * client times the request it sends once the semaphore lets it.
   */
  public synchronized ServeResult serve(List<TimedRequest> requests, List<TokenListener> listeners,
      int maxConcurrency, EngineClock clock) {
    requireNoLoop();
    Objects.requireNonNull(requests, "requests");
    Objects.requireNonNull(clock, "clock");
    if (listeners != null && listeners.size() != requests.size()) {
      throw new IllegalArgumentException(listeners.size() + " listeners for " + requests.size() + " requests");
    }
    if (paged == null) {
      throw new IllegalStateException("serve needs a cache policy (continuous batching over a paged cache): build "
          + "the engine with optPolicy, e.g. \"full\"");
    }
    List<GenerationRequest> plain = new ArrayList<>(requests.size());
    long[] arrivals = new long[requests.size()];
    for (int i = 0; i < arrivals.length; ++i) {
      plain.add(requests.get(i).request());
      arrivals[i] = requests.get(i).arrivalNanos();
    }
    PagedRun run = new PagedRun(model, paged.cache(), paged.kv(), paged.policy(), paged.config(), codec, eosIds);
    return run.serve(plain, arrivals, listeners, requestIds.getAndAdd(requests.size()), 1, maxConcurrency, clock);
  }

  /**
   * {@code n} samples of one request: each draws with its own request id (the sampling key), so
   * with temperature above 0 they differ. Under a cache policy they share the prompt's pages
   * (prefilled once, copied on write); without one they run as {@code n} copies.
   */
  public synchronized List<GenerationResult> generateSamples(GenerationRequest request, int n) {
    requireNoLoop();
    Objects.requireNonNull(request, "request");
    if (n < 1) {
      throw new IllegalArgumentException("n=" + n + " samples must be >= 1");
    }
    if (paged != null) {
      PagedRun run = new PagedRun(model, paged.cache(), paged.kv(), paged.policy(), paged.config(), codec, eosIds);
      return run.run(List.of(request), null, requestIds.getAndAdd(n), n);
    }
    return generateAll(java.util.Collections.nCopies(n, request), null);
  }

  /**
   * Teacher forcing through the generation path (fidelity of a cache policy against full KV):
   * each prompt is prefilled, then each forced token is fed by one decode step, as a sampled one
   * would be. Under a policy the decode steps take its page selection (Quest attends its top-K
   * pages; a prefill of the whole sequence would attend every page); without one they run on
   * the slot caches. The sampler still runs; its tokens are replaced by the forced ones.
   * Requests run {@link #maxBatch()} at a time; EOS does not stop them.
   *
   * @return per request, {@code forced.length} fp32 logit vectors of the vocabulary's size:
   *     element {@code i} is what the model gives after the prompt and {@code forced[0..i-1]},
   *     the distribution {@code forced[i]} is drawn from (element 0: the last prompt position)
   * @throws IllegalArgumentException when the lists differ in size, a prompt or forced list is
   *     empty, or a prompt plus its forced tokens exceed {@link #maxContext()}
   */
  public synchronized List<float[][]> forceDecode(List<int[]> prompts, List<int[]> forcedTokens) {
    requireNoLoop();
    Objects.requireNonNull(prompts, "prompts");
    Objects.requireNonNull(forcedTokens, "forcedTokens");
    if (prompts.size() != forcedTokens.size()) {
      throw new IllegalArgumentException(forcedTokens.size() + " forced lists for " + prompts.size() + " prompts");
    }
    List<GenerationRequest> requests = new ArrayList<>();
    List<ForcedTokens> forced = new ArrayList<>();
    for (int i = 0; i < prompts.size(); ++i) {
      int[] f = forcedTokens.get(i);
      if (f.length == 0) {
        throw new IllegalArgumentException("request " + i + ": no forced tokens");
      }
      // The last forced token is never fed: prompt + forced - 1 positions hold K and V.
      if (prompts.get(i).length + f.length > maxContext()) {
        throw new IllegalArgumentException("request " + i + ": " + prompts.get(i).length + " prompt + " + f.length
            + " forced tokens exceed the context of " + maxContext());
      }
      requests.add(GenerationRequest.of(prompts.get(i), f.length, SamplingParams.greedy()).withIgnoreEos(true));
      forced.add(new ForcedTokens(f));
    }
    if (paged != null) {
      new PagedRun(model, paged.cache(), paged.kv(), paged.policy(), paged.config(), codec, eosIds)
          .withForcedTokens(forced).run(requests, null, requestIds.getAndAdd(requests.size()));
    } else {
      BatchRun run = new BatchRun(model, cache, codec, eosIds, maxStepTokens);
      for (int from = 0; from < requests.size(); from += cache.slots()) {
        int to = Math.min(requests.size(), from + cache.slots());
        run.withForcedTokens(forced.subList(from, to)).run(requests.subList(from, to), null,
            requestIds.getAndAdd(to - from));
      }
    }
    List<float[][]> out = new ArrayList<>();
    for (int i = 0; i < forced.size(); ++i) {
      if (!forced.get(i).done()) {
        throw new IllegalStateException("request " + i + " ended after " + forced.get(i).logits.size() + " of "
            + forced.get(i).tokens.length + " forced tokens");
      }
      out.add(forced.get(i).result());
    }
    return out;
  }

  /** {@link #forceDecode(List, List)} of one prompt. */
  public float[][] forceDecode(int[] prompt, int[] forcedTokens) {
    return forceDecode(List.of(prompt), List.of(forcedTokens)).get(0);
  }

  /**
   * Teacher-forced log-probabilities of given token sequences (perplexity): for each sequence,
   * {@code length - 1} values where element {@code i} is the natural-log probability of
   * {@code seq[i + 1]} after {@code seq[0..i]}. Sequences run {@link #maxBatch()} at a time, one
   * position per step (a step returns logits at each sequence's last new position only), so this
   * costs as many steps as the longest sequence has tokens.
   *
   * @throws IllegalArgumentException when a sequence is empty or longer than {@link #maxContext()}
   */
  public synchronized List<float[]> scoreTokens(List<int[]> sequences) {
    requireNoLoop();
    Objects.requireNonNull(sequences, "sequences");
    List<float[]> out = new ArrayList<>();
    for (int from = 0; from < sequences.size(); from += cache.slots()) {
      int to = Math.min(sequences.size(), from + cache.slots());
      long firstId = requestIds.getAndAdd(to - from);
      out.addAll(TokenScorer.score(model, cache, sequences.subList(from, to), firstId));
    }
    return out;
  }

  // ---- EngineLoop's hooks.

  private void requireNoLoop() {
    if (loop != null) {
      throw new IllegalStateException("an EngineLoop runs on this engine: submit requests to it, or shut it down first");
    }
  }

  /** Attaches a loop built over this engine's paged run; at most one at a time. */
  synchronized EngineLoop attachLoop(java.util.function.Function<PagedRun, EngineLoop> create) {
    if (paged == null) {
      throw new IllegalStateException("an EngineLoop needs a cache policy (continuous batching over a paged cache): "
          + "build the engine with optPolicy, e.g. \"full\"");
    }
    requireNoLoop();
    loop = create.apply(new PagedRun(model, paged.cache(), paged.kv(), paged.policy(), paged.config(), codec,
        eosIds));
    return loop;
  }

  synchronized void detachLoop(EngineLoop l) {
    if (loop == l) {
      loop = null;
    }
  }

  /** Reserves {@code n} consecutive request ids (sampling keys). */
  long nextRequestIds(int n) {
    return requestIds.getAndAdd(n);
  }

  TextCodec codec() {
    return codec;
  }

  /** Shuts a running {@link EngineLoop} down at once (cancelling its requests), then releases everything. */
  @Override
  public void close() {
    EngineLoop l;
    synchronized (this) {
      l = loop;
    }
    if (l != null) {
      l.shutdown(java.time.Duration.ZERO);
    }
    try {
      if (paged != null) {
        paged.cache().close();
      }
      cache.close();
    } finally {
      try {
        model.close();
      } finally {
        if (codec != null) {
          codec.close();
        }
      }
    }
  }

  private static void closeQuietly(PagedKvCache paged, KvCache cache, Model model) {
    if (paged != null) {
      paged.close();
    }
    if (cache != null) {
      cache.close();
    }
    model.close();
  }

  /** Builds an {@link Engine}: {@code setModel} is required, the rest optional. */
  public static final class Builder {
    private String model;
    private Backend backend = Backend.CPU;
    private int device;
    private DType dtype;
    private int maxContext = 4096;
    private int maxBatch = 8;
    private int maxStepTokens = 2048;
    private long syntheticSeed = 0;
    private Path tokenizerDir;
    private Policy policy;
    private int pageTokens = PageLayout.DEFAULT_PAGE_TOKENS;
    private KvBudget kvBudget;

    /**
     * A Hugging Face model directory, {@code kvasir-ref} (the shipped reference model, see
     * {@link ReferenceModel}), {@code synthetic:<preset>} (see {@link SyntheticModels}) or
     * {@code tiny:<architecture>} (see {@link TinyModels}).
     */
    public Builder setModel(String modelDirOrSynthetic) {
      this.model = Objects.requireNonNull(modelDirOrSynthetic, "model");
      return this;
    }

    public Builder optDevice(Backend backend, int device) {
      this.backend = Objects.requireNonNull(backend, "backend");
      this.device = device;
      return this;
    }

    /** Storage dtype of weights and KV cache: F32 or BF16 (default: bf16 unless the checkpoint is fp32). */
    public Builder optDtype(DType dtype) {
      if (dtype != DType.F32 && dtype != DType.BF16) {
        throw new IllegalArgumentException("dtype " + dtype + ": weights are stored as F32 or BF16");
      }
      this.dtype = dtype;
      return this;
    }

    /** Tokens per sequence (prompt plus generated); capped by the model's max_position_embeddings. */
    public Builder optMaxContext(int tokens) {
      if (tokens < 2) {
        throw new IllegalArgumentException("max context " + tokens + " must be >= 2");
      }
      this.maxContext = tokens;
      return this;
    }

    /** Sequences run together; the KV cache holds this many full contexts. */
    public Builder optMaxBatch(int sequences) {
      if (sequences < 1) {
        throw new IllegalArgumentException("max batch " + sequences + " must be >= 1");
      }
      this.maxBatch = sequences;
      return this;
    }

    /** Prompt tokens per prefill step (chunked prefill). */
    public Builder optMaxStepTokens(int tokens) {
      if (tokens < 1) {
        throw new IllegalArgumentException("max step tokens " + tokens + " must be >= 1");
      }
      this.maxStepTokens = tokens;
      return this;
    }

    /** Seed of a synthetic model's random weights. */
    /**
     * Runs requests under a cache policy (spec syntax of {@link Policy#parse}, e.g. {@code "full"},
     * {@code "quest:k=64"}): a paged cache of maxBatch x maxContext tokens, the continuous-batching
     * scheduler and, where the policy allows it, prefix caching across calls (CPU and CUDA models);
     * without a policy the engine runs slot caches with static batching.
     *
     * @throws io.kvasir.policy.PolicySpecException naming the spec when it is not valid
     */
    public Builder optPolicy(String spec) {
      return optPolicy(Policy.parse(spec));
    }

    /** A parsed cache policy (e.g. {@code Policy.parse(spec).withoutPrefixCache()}). */
    public Builder optPolicy(Policy parsed) {
      this.policy = Objects.requireNonNull(parsed, "policy");
      return this;
    }

    /**
     * The memory of a policy's paged cache, in bytes or tokens ({@code "2GiB"}, {@code "65536tokens"};
     * {@link KvBudget#parse}); default: maxBatch sequences of maxContext tokens.
     */
    public Builder optKvBudget(String budget) {
      this.kvBudget = KvBudget.parse(budget);
      return this;
    }

    /** Tokens per page of a policy's paged cache (default 16). */
    public Builder optPageTokens(int tokens) {
      if (tokens < 1 || tokens > 256) {
        throw new IllegalArgumentException("page tokens must be in [1, 256], not " + tokens);
      }
      this.pageTokens = tokens;
      return this;
    }

    public Builder optSyntheticSeed(long seed) {
      this.syntheticSeed = seed;
      return this;
    }

    /** A directory with a tokenizer.json, for synthetic models or to override the model's. */
    public Builder optTokenizer(Path dir) {
      this.tokenizerDir = dir;
      return this;
    }

    /**
     * Loads the model onto the device and allocates the cache.
     *
     * @throws UncheckedIOException when the checkpoint cannot be read
     */
    public Engine build() {
      if (model == null) {
        throw new IllegalStateException("setModel(...) is required");
      }
      if (backend == Backend.CUDA) {
        DeviceCount count = Devices.count(Backend.CUDA);
        if (count.count() <= device) {
          throw new IllegalArgumentException("no CUDA device " + device
              + (count.available() ? " (" + count.count() + " found)" : ": " + count.reason()));
        }
      }
      Model m;
      Path modelDir = null;
      if (SyntheticModels.isSynthetic(model)) {
        ModelShape shape = SyntheticModels.shape(model).withMaxPositions(maxContext);
        if (dtype != null) {
          shape = shape.withWeightDtype(dtype);
        }
        m = Model.create(backend, device, shape);
        try {
          // std 0.02: transformers' initializer_range, so activations stay in a realistic range.
          m.randomize(syntheticSeed, 0.02f);
        } catch (RuntimeException e) {
          m.close();
          throw e;
        }
      } else {
        try {
          Path dir = modelDirectory(model);
          modelDir = dir;
          var config = io.kvasir.model.ModelConfig.load(dir);
          m = ModelLoader.load(dir, backend, device, dtype != null ? dtype : ModelLoader.defaultDtype(config),
              maxContext);
        } catch (IOException e) {
          throw new UncheckedIOException("could not load " + model + ": " + e.getMessage(), e);
        }
      }
      KvCache c = null;
      PagedKvCache pc = null;
      TextCodec codec = null;
      try {
        // Under a policy the pages hold the sequences; the slot cache keeps one slot for scoreTokens.
        c = KvCache.create(m, policy != null ? 1 : maxBatch, Math.min(maxContext, m.shape().maxPositions()));
        Path tokDir = tokenizerDir != null ? tokenizerDir : (SyntheticModels.isSynthetic(model) ? null : modelDir);
        if (tokDir != null && (tokenizerDir != null || Files.exists(tokDir.resolve(Tokenizer.FILE_NAME)))) {
          codec = HfTextCodec.load(tokDir);  // names the missing or malformed file
        }
        int[] eos = codec != null ? codec.eosTokenIds()
            : SyntheticModels.isSynthetic(model) ? new int[0] : GenerationConfigEos.read(modelDir);
        LOG.info("engine ready: {} on {}:{}, {} MiB weights, KV cache {} MiB for {} x {} tokens", model, backend,
            device, m.weightBytes() >> 20, c.bytes() >> 20, c.slots(), c.capacity());
        Paged p = null;
        if (policy != null) {
          CachePolicy cp = CachePolicy.build(policy, pageTokens);
          int context = c.capacity();
          ModelShape ms = m.shape();
          PageLayout layout = new PageLayout(pageTokens, ms.numLayers(), ms.numKvHeads(), ms.headDim(),
              ms.weightDtype() == DType.F32 ? 4 : 2);
          long wanted = kvBudget != null ? kvBudget.pages(layout)
              : (long) maxBatch * ((context + pageTokens - 1) / pageTokens + 1);
          long maxPages = (Integer.MAX_VALUE / pageTokens) / ms.numKvHeads();
          if (wanted > maxPages) {
            throw new IllegalArgumentException("KV budget " + kvBudget + " is " + wanted + " pages of " + pageTokens
                + " tokens, more than one cache can index");
          }
          int pages = (int) wanted;
          pc = PagedKvCache.create(m, pages, pageTokens, cp.keySummaries());
          KvCacheManager kv = new KvCacheManager(new PagePool(pages), pageTokens, cp.prefixCache());
          p = new Paged(pc, kv, cp, new SchedulerConfig(Math.max(maxStepTokens, maxBatch), maxBatch, context + 1));
          LOG.info("cache policy {}: {} pages of {} tokens ({} MiB)", cp, pages, pageTokens, pc.bytes() >> 20);
        }
        return new Engine(model, m, c, codec, eos, maxStepTokens, p);
      } catch (IOException e) {
        closeQuietly(pc, c, m);
        throw new UncheckedIOException(e.getMessage(), e);
      } catch (RuntimeException | Error e) {
        closeQuietly(pc, c, m);
        throw e;
      }
    }
  }
}
