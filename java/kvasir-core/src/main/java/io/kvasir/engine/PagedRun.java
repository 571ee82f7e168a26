package io.kvasir.engine;

import io.kvasir.cache.KvCacheManager;
import io.kvasir.nativeapi.Model;
import io.kvasir.nativeapi.PagedKvCache;
import io.kvasir.nativeapi.PagedStepBatch;
import io.kvasir.nativeapi.StepResult;
import io.kvasir.policy.spi.CachePolicy;
import io.kvasir.policy.spi.LayerWork;
import io.kvasir.policy.spi.PolicyCounters;
import io.kvasir.sched.Finished;
import io.kvasir.sched.SchedRequest;
import io.kvasir.sched.Scheduler;
import io.kvasir.sched.SchedulerConfig;
import io.kvasir.sched.StepPlan;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Runs requests through the continuous-batching {@link Scheduler} over a paged cache: the engine
 * path of cache policies. Every step plans (copy-on-write copies first), runs one native paged
 * step with the policy's page selection, and hands the sampled tokens back to the scheduler.
 * Token semantics are {@link SequenceOutput}'s, as for {@link BatchRun}.
 */
final class PagedRun {
  private static final Logger LOG = LogManager.getLogger(PagedRun.class);

  private final Model model;
  private final PagedKvCache cache;
  private final KvCacheManager kv;
  private final CachePolicy policy;
  private final SchedulerConfig config;
  private final TextCodec codec;
  private final int[] eosIds;
  private int peakPagesUsed;  // since begin()
  // The step loop's state (begin()); one thread at a time.
  private EngineClock clock;
  private Scheduler sched;
  private Map<Long, SequenceOutput> byId;  // live sequences by sample id
  private LayerWork work;
  private final List<Long> retired = new ArrayList<>();  // left the scheduler last step: dropped from byId next step
  private List<ForcedTokens> forced;  // per request, or null: teacher forcing (Engine.forceDecode)
  volatile Runnable afterPlan;  // tests: runs after each step's plan (a step that throws there leaves the scheduler mid-step)

  PagedRun(Model model, PagedKvCache cache, KvCacheManager kv, CachePolicy policy, SchedulerConfig config,
      TextCodec codec, int[] eosIds) {
    this.model = model;
    this.cache = cache;
    this.kv = kv;
    this.policy = policy;
    this.config = config;
    this.codec = codec;
    this.eosIds = eosIds;
  }

  List<GenerationResult> run(List<GenerationRequest> requests, List<TokenListener> listeners, long firstRequestId) {
    return run(requests, listeners, firstRequestId, 1);
  }

  /**
   * Teacher forcing: request {@code i} commits {@code forced.get(i).tokens} in place of what it
   * samples and records the logits of each of those steps (one sample per request). Under a
   * policy the forced tokens go through its decode path, as generated tokens do. A sequence that
   * is preempted is recomputed through prefill; size the KV budget so that none is.
   */
  PagedRun withForcedTokens(List<ForcedTokens> perRequest) {
    this.forced = perRequest;
    return this;
  }

  /**
   * Runs every request as {@code n} samples sharing the prompt's pages: request {@code i}'s
   * samples get request ids {@code firstRequestId + i * n + j} (the sampling key); results come
   * request by request, sample by sample. Listeners (n = 1 only) stream tokens.
   */
  List<GenerationResult> run(List<GenerationRequest> requests, List<TokenListener> listeners, long firstRequestId,
      int n) {
    long[] arrivals = new long[requests.size()];  // all at the start
    return serve(requests, arrivals, listeners, firstRequestId, n, EngineClock.SYSTEM).results();
  }

  /**
   * Runs requests that arrive over time: request {@code i} is handed to the scheduler once
   * {@code arrivalNanos[i]} has passed since the start of the call (requests arriving together
   * keep their order), and the loop sleeps on {@code clock} while nothing has arrived and nothing
   * runs. Arrival never changes a request's tokens: sampling is keyed by the request id.
   *
   * @throws java.util.concurrent.CancellationException when interrupted while waiting for an
   *     arrival (nothing is running then, so no pages are left behind)
   */
  ServeResult serve(List<GenerationRequest> requests, long[] arrivalNanos, List<TokenListener> listeners,
      long firstRequestId, int n, EngineClock clock) {
    return serve(requests, arrivalNanos, listeners, firstRequestId, n, 0, clock);
  }

  /**
   * As {@link #serve(List, long[], List, long, int, EngineClock)} with at most
   * {@code maxConcurrency} requests in flight (0: no cap), as {@code vllm bench serve
   * --max-concurrency}: an arrived request waits until fewer are in flight (handed over and not
   * finished). Its stats then count from the hand-over: the later of its arrival and the moment the
   * slot it takes was freed (the finish of an earlier request).
   */
  ServeResult serve(List<GenerationRequest> requests, long[] arrivalNanos, List<TokenListener> listeners,
      long firstRequestId, int n, int maxConcurrency, EngineClock clock) {
    if (maxConcurrency < 0) {
      throw new IllegalArgumentException("maxConcurrency=" + maxConcurrency + " must be >= 0 (0: no cap)");
    }
    if (n < 1 || (n > 1 && listeners != null)) {
      throw new IllegalArgumentException("n=" + n + " samples must be >= 1, and stream to no listener when above 1");
    }
    if (forced != null && (n != 1 || forced.size() != requests.size())) {
      throw new IllegalArgumentException("teacher forcing takes one sample and one forced list per request");
    }
    if (arrivalNanos.length != requests.size()) {
      throw new IllegalArgumentException(arrivalNanos.length + " arrival times for " + requests.size() + " requests");
    }
    for (GenerationRequest r : requests) {
      checkPrompt(r);
    }
    final long start = clock.nanoTime();
    final long queried0 = kv.prefixTokensQueried();
    final long hit0 = kv.prefixTokensHit();
    final Map<String, Long> counters0 = counters();
    begin(clock);
    List<SequenceOutput> seqs = new ArrayList<>();
    List<List<SequenceOutput>> perRequest = new ArrayList<>();
    for (int i = 0; i < requests.size(); ++i) {
      long base = firstRequestId + (long) i * n;
      List<SequenceOutput> samples = new ArrayList<>();
      for (int j = 0; j < n; ++j) {
        SequenceOutput s = new SequenceOutput(requests.get(i), listeners == null ? null : listeners.get(i), base + j, j,
            codec);
        if (forced != null) {
          s.forced = forced.get(i);
        }
        samples.add(s);
      }
      seqs.addAll(samples);
      perRequest.add(samples);
    }
    // Submission order: by arrival, ties in the order given (a stable sort).
    Integer[] order = new Integer[requests.size()];
    for (int i = 0; i < order.length; ++i) {
      order[i] = i;
    }
    java.util.Arrays.sort(order, java.util.Comparator.comparingLong(i -> arrivalNanos[i]));
    int nextArrival = 0;
    List<StepTrace> trace = new ArrayList<>();
    // Hand-over times; under a cap, the times slots were freed, oldest first (the first cap slots at the start).
    long[] handedOver = new long[requests.size()];
    int[] samplesLeft = new int[requests.size()];
    java.util.ArrayDeque<Long> freeSlots = new java.util.ArrayDeque<>();
    for (int k = 0; k < maxConcurrency; ++k) {
      freeSlots.add(start);
    }
    List<Long> finishedIds = new ArrayList<>();
    while (nextArrival < order.length || sched.hasWork()) {
      long now = clock.nanoTime();
      while (nextArrival < order.length && arrivalNanos[order[nextArrival]] <= now - start
          && (maxConcurrency == 0 || !freeSlots.isEmpty())) {
        int i = order[nextArrival++];
        handedOver[i] = start + arrivalNanos[i];
        if (maxConcurrency > 0) {
          handedOver[i] = Math.max(handedOver[i], freeSlots.poll());
        }
        samplesLeft[i] = n;
        addRequest(perRequest.get(i));
      }
      if (!sched.hasWork()) {
        // Nothing runs, so nothing is in flight: the cap cannot be what holds the next request.
        waitUntil(clock, start + arrivalNanos[order[nextArrival]]);
        continue;
      }
      finishedIds.clear();
      StepTrace t = stepOnce(finishedIds);
      if (t != null) {
        trace.add(t);
      }
      for (long id : finishedIds) {
        int i = (int) ((id - firstRequestId) / n);
        if (--samplesLeft[i] == 0 && maxConcurrency > 0) {
          freeSlots.add(byId.get(id).lastTokenNanos);
        }
      }
    }
    long end = clock.nanoTime();
    LOG.debug("paged run: {} requests in {} steps, {} preemptions, prefix cache {} of {} tokens", requests.size(),
        trace.size(), sched.preemptions(), kv.prefixTokensHit() - hit0, kv.prefixTokensQueried() - queried0);
    List<GenerationResult> out = new ArrayList<>();
    for (int k = 0; k < seqs.size(); ++k) {
      out.add(seqs.get(k).result(start, handedOver[k / n], model.shape().kvBytesPerToken()));
    }
    ServeResult.KvUsage usage = new ServeResult.KvUsage(cache.pages(), cache.pageTokens(),
        cache.bytes() / cache.pages(), peakPagesUsed);
    return new ServeResult(out, (end - start) / 1e6, sched.preemptions(), kv.prefixTokensQueried() - queried0,
        kv.prefixTokensHit() - hit0, trace, usage, PolicyCounters.difference(counters0, counters()));
  }

  // ---- The step loop, shared by serve and EngineLoop: begin, then addRequest and stepOnce in any order.

  /** Starts an empty step loop (a fresh scheduler) on {@code clock}; the page pool keeps its prefix cache. */
  void begin(EngineClock clock) {
    this.clock = clock;
    this.sched = new Scheduler(config, kv);
    this.byId = new HashMap<>();
    this.work = policy.layerWork();
    this.peakPagesUsed = kv.pool().usedPages();
    this.retired.clear();
  }

  /**
   * Queues one request as its samples: {@code samples.get(j)} has request id
   * {@code samples.get(0).requestId + j} and the same request.
   *
   * @throws IllegalArgumentException when the prompt leaves no room in the context, or the request
   *     cannot fit the KV pool even alone (nothing is queued then)
   */
  void addRequest(List<SequenceOutput> samples) {
    SequenceOutput first = samples.get(0);
    GenerationRequest r = first.request;
    checkPrompt(r);
    long[] sampleIds = new long[samples.size() - 1];
    for (int j = 1; j < samples.size(); ++j) {
      sampleIds[j - 1] = first.requestId + j;
    }
    // The scheduler ends a sequence on these tokens; SequenceOutput keeps them out of the output.
    sched.submit(new SchedRequest(first.requestId, r.promptTokens(), r.maxTokens() + 1,
        t -> first.isStopToken(t, eosIds), 0, sampleIds));
    for (SequenceOutput s : samples) {
      byId.put(s.requestId, s);
    }
  }

  void checkPrompt(GenerationRequest r) {
    if (r.promptTokens().length >= config.maxModelLen() - 1) {
      throw new IllegalArgumentException("the prompt has " + r.promptTokens().length + " tokens; the context holds "
          + (config.maxModelLen() - 1) + " (prompt plus at least one generated token)");
    }
  }

  /**
   * What {@link #addRequest} and the sequence's output would refuse, checked up front (any thread:
   * reads only the configuration).
   */
  void checkRequest(GenerationRequest r, boolean hasTokenizer) {
    checkPrompt(r);
    int vocab = model.shape().vocabSize();
    for (int t : r.promptTokens()) {
      if (t < 0 || t >= vocab) {  // the native step would fail, and with it every request of that step
        throw new IllegalArgumentException("prompt token " + t + " is outside the vocabulary [0, " + vocab + ")");
      }
    }
    if (!r.stopStrings().isEmpty() && !hasTokenizer) {
      throw new IllegalArgumentException("stop strings need a tokenizer; this model has none");
    }
    // As Scheduler.submit: the longest sequence plus one page of slack must fit the pool alone.
    long longest = Math.min((long) r.promptTokens().length + r.maxTokens() + 1, config.maxModelLen());
    long capacity = (long) kv.pool().capacity() * kv.pageTokens();
    if (longest + kv.pageTokens() > capacity) {
      throw new IllegalArgumentException("up to " + longest + " tokens of KV do not fit the KV cache ("
          + kv.pool().capacity() + " pages of " + kv.pageTokens() + " tokens) even alone; lower max_tokens");
    }
  }

  /** Whether a sequence is queued or running (cancelled ones until the next step boundary). */
  boolean hasWork() {
    return sched.hasWork();
  }

  /** Drops a sequence (by sample id); its pages are freed when the next step is planned. */
  void cancel(long id) {
    sched.cancel(id);
  }

  /**
   * Runs one step; ids of sequences that produced their last token go to {@code finishedIds}.
   * Returns null when the step only applied cancellations (nothing was left to run).
   */
  StepTrace stepOnce(List<Long> finishedIds) {
    return step(sched, byId, work, clock, finishedIds);
  }

  /**
   * After a failed step: frees every live sequence's pages and starts a fresh scheduler. The
   * scheduler's state is unknown after a throw mid-step, so every queued and running sequence is
   * dropped; the prefix cache keeps only pages that were committed.
   */
  void reset() {
    for (long id : new ArrayList<>(byId.keySet())) {
      if (kv.contains(id)) {
        kv.free(id);
      }
    }
    kv.drainCopies();
    byId.clear();
    retired.clear();
    sched = new Scheduler(config, kv);
  }

  Scheduler scheduler() {
    return sched;
  }

  KvCacheManager kv() {
    return kv;
  }

  int peakPagesUsed() {
    return peakPagesUsed;
  }

  // The manager's counters, then the policy's.
  Map<String, Long> counters() {
    Map<String, Long> m = new java.util.LinkedHashMap<>(kv.counters());
    m.putAll(policy.counters());
    return m;
  }

  private static void waitUntil(EngineClock clock, long nanoTime) {
    try {
      clock.sleepUntil(nanoTime);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.util.concurrent.CancellationException("interrupted while waiting for the next request to arrive");
    }
  }

  // One step: plan (copy-on-write copies first), run the native paged step, hand the sampled tokens back.
  // Ids of the sequences that produced their last token go to finishedIds.
  private StepTrace step(Scheduler sched, Map<Long, SequenceOutput> byId, LayerWork work, EngineClock clock,
      List<Long> finishedIds) {
    long t0 = clock.nanoTime();
    for (long id : retired) {
      byId.remove(id);  // kept one step so that callers could read the outputs that finished
    }
    retired.clear();
    List<Finished> cancelled = new ArrayList<>();
    StepPlan plan = sched.plan(cancelled);
    for (Finished f : cancelled) {
      byId.remove(f.id());
    }
    if (afterPlan != null) {
      afterPlan.run();
    }
    peakPagesUsed = Math.max(peakPagesUsed, kv.pool().usedPages());
    if (!plan.copies().isEmpty()) {
      cache.copyPages(plan.copies().stream().mapToInt(c -> c.src()).toArray(),
          plan.copies().stream().mapToInt(c -> c.dst()).toArray());
    }
    if (plan.isEmpty() && !cancelled.isEmpty() && !sched.hasWork()) {
      sched.complete(new int[0]);  // the cancellations emptied the scheduler
      return null;
    }
    if (plan.isEmpty()) {
      // Cannot happen: submit() refuses what could not fit alone, and the oldest sequence can
      // always run once the younger ones are preempted. Fail loudly rather than spin.
      throw new IllegalStateException("the scheduler planned an empty step with " + sched.waitingCount()
          + " waiting and " + sched.runningCount() + " running sequences");
    }
    PagedStepBatch batch = new PagedStepBatch();
    if (work.selection() == LayerWork.Selection.QUEST) {
      batch.quest(work.topKPages());
    }
    boolean logits = false;
    int tokens = 0;
    long kvRead = 0;
    long pairs = 0;
    for (StepPlan.Entry e : plan.entries()) {
      SequenceOutput s = byId.get(e.seqId());
      if (s.cachedPromptTokens < 0) {
        // Its first step starts after the prompt tokens found in the prefix cache (or, for an
        // n > 1 sample, shared with the first sample).
        s.cachedPromptTokens = e.startPos();
      }
      batch.add(kv.pageTable(e.seqId()), e.startPos(), e.tokens(), s.sampling());
      logits |= e.sample() && (s.forced != null || s.request.returnPromptLogits() && !s.sampledAny
          || s.stream != null && s.request.wantsLogprobs());
      long len = e.tokens().length;
      tokens += len;
      kvRead += e.startPos() + len;
      pairs += len * e.startPos() + len * (len + 1) / 2;
    }
    if (logits) {
      batch.withLogits();
    }
    StepResult result = model.stepPaged(cache, batch);
    long now = clock.nanoTime();
    List<Integer> sampled = new ArrayList<>();
    for (int i = 0; i < plan.entries().size(); ++i) {
      StepPlan.Entry e = plan.entries().get(i);
      if (!e.sample()) {
        continue;
      }
      SequenceOutput s = byId.get(e.seqId());
      int token = result.token(i);
      if (s.forced != null && !s.forced.done() && s.finish == null) {
        token = s.forced.force(result.logits(i));
      }
      sampled.add(token);
      if (s.finish != null) {
        continue;  // already ended (a stop string); its cancellation lands at the next plan
      }
      if (!s.sampledAny && s.request.returnPromptLogits()) {
        s.promptLogits = result.logits(i);
      }
      if (s.stream != null && s.request.wantsLogprobs() && !s.isStopToken(token, eosIds)) {
        s.logprobs = TokenLogprobs.of(result.logits(i), token, s.request.topLogprobs(), codec);
      }
      s.accept(token, eosIds, config.maxModelLen() - 1, now);
      if (s.finish != null) {
        sched.cancel(s.requestId);
        finishedIds.add(s.requestId);
      }
    }
    for (Finished f : sched.complete(sampled.stream().mapToInt(Integer::intValue).toArray())) {
      retired.add(f.id());
    }
    return new StepTrace(plan.entries().size(), tokens, sampled.size(), kvRead, pairs, clock.nanoTime() - t0);
  }
}
