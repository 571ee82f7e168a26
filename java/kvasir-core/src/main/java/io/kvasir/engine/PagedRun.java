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
  private int peakPagesUsed;  // of the current serve call
  private List<ForcedTokens> forced;  // per request, or null: teacher forcing (Engine.forceDecode)

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
      if (r.promptTokens().length >= config.maxModelLen() - 1) {
        throw new IllegalArgumentException("the prompt has " + r.promptTokens().length + " tokens; the context holds "
            + (config.maxModelLen() - 1) + " (prompt plus at least one generated token)");
      }
    }
    final long start = clock.nanoTime();
    final long queried0 = kv.prefixTokensQueried();
    final long hit0 = kv.prefixTokensHit();
    final Map<String, Long> counters0 = counters();
    peakPagesUsed = kv.pool().usedPages();
    Scheduler sched = new Scheduler(config, kv);
    Map<Long, SequenceOutput> byId = new HashMap<>();
    List<SequenceOutput> seqs = new ArrayList<>();
    for (int i = 0; i < requests.size(); ++i) {
      long base = firstRequestId + (long) i * n;
      for (int j = 0; j < n; ++j) {
        SequenceOutput s = new SequenceOutput(requests.get(i), listeners == null ? null : listeners.get(i), base + j,
            codec);
        if (forced != null) {
          s.forced = forced.get(i);
        }
        seqs.add(s);
        byId.put(s.requestId, s);
      }
    }
    // Submission order: by arrival, ties in the order given (a stable sort).
    Integer[] order = new Integer[requests.size()];
    for (int i = 0; i < order.length; ++i) {
      order[i] = i;
    }
    java.util.Arrays.sort(order, java.util.Comparator.comparingLong(i -> arrivalNanos[i]));
    int nextArrival = 0;
    LayerWork work = policy.layerWork();
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
        submit(sched, requests.get(i), firstRequestId + (long) i * n, n, byId);
      }
      if (!sched.hasWork()) {
        // Nothing runs, so nothing is in flight: the cap cannot be what holds the next request.
        waitUntil(clock, start + arrivalNanos[order[nextArrival]]);
        continue;
      }
      finishedIds.clear();
      trace.add(step(sched, byId, work, clock, finishedIds));
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

  // The manager's counters, then the policy's.
  private Map<String, Long> counters() {
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

  private void submit(Scheduler sched, GenerationRequest r, long base, int n, Map<Long, SequenceOutput> byId) {
    long[] sampleIds = new long[n - 1];
    for (int j = 1; j < n; ++j) {
      sampleIds[j - 1] = base + j;
    }
    SequenceOutput first = byId.get(base);
    // The scheduler ends a sequence on these tokens; SequenceOutput keeps them out of the output.
    sched.submit(new SchedRequest(base, r.promptTokens(), r.maxTokens() + 1, t -> first.isStopToken(t, eosIds), 0,
        sampleIds));
  }

  // One step: plan (copy-on-write copies first), run the native paged step, hand the sampled tokens back.
  // Ids of the sequences that produced their last token go to finishedIds.
  private StepTrace step(Scheduler sched, Map<Long, SequenceOutput> byId, LayerWork work, EngineClock clock,
      List<Long> finishedIds) {
    long t0 = clock.nanoTime();
    StepPlan plan = sched.plan(null);
    peakPagesUsed = Math.max(peakPagesUsed, kv.pool().usedPages());
    if (!plan.copies().isEmpty()) {
      cache.copyPages(plan.copies().stream().mapToInt(c -> c.src()).toArray(),
          plan.copies().stream().mapToInt(c -> c.dst()).toArray());
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
      batch.add(kv.pageTable(e.seqId()), e.startPos(), e.tokens(), s.sampling());
      logits |= e.sample() && (s.forced != null || s.request.returnPromptLogits() && !s.sampledAny);
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
      s.accept(token, eosIds, config.maxModelLen() - 1, now);
      if (s.finish != null) {
        sched.cancel(s.requestId);
        finishedIds.add(s.requestId);
      }
    }
    sched.complete(sampled.stream().mapToInt(Integer::intValue).toArray());
    return new StepTrace(plan.entries().size(), tokens, sampled.size(), kvRead, pairs, clock.nanoTime() - t0);
  }
}
