package io.kvasir.engine;

import io.kvasir.cache.KvCacheManager;
import io.kvasir.nativeapi.Model;
import io.kvasir.nativeapi.PagedKvCache;
import io.kvasir.nativeapi.PagedStepBatch;
import io.kvasir.nativeapi.StepResult;
import io.kvasir.policy.spi.CachePolicy;
import io.kvasir.policy.spi.LayerWork;
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
   * Runs every request as {@code n} samples sharing the prompt's pages: request {@code i}'s
   * samples get request ids {@code firstRequestId + i * n + j} (the sampling key); results come
   * request by request, sample by sample. Listeners (n = 1 only) stream tokens.
   */
  List<GenerationResult> run(List<GenerationRequest> requests, List<TokenListener> listeners, long firstRequestId,
      int n) {
    if (n < 1 || (n > 1 && listeners != null)) {
      throw new IllegalArgumentException("n=" + n + " samples must be >= 1, and stream to no listener when above 1");
    }
    final long start = System.nanoTime();
    Scheduler sched = new Scheduler(config, kv);
    Map<Long, SequenceOutput> byId = new HashMap<>();
    List<SequenceOutput> seqs = new ArrayList<>();
    for (int i = 0; i < requests.size(); ++i) {
      GenerationRequest r = requests.get(i);
      if (r.promptTokens().length >= config.maxModelLen() - 1) {
        throw new IllegalArgumentException("the prompt has " + r.promptTokens().length + " tokens; the context holds "
            + (config.maxModelLen() - 1) + " (prompt plus at least one generated token)");
      }
      long base = firstRequestId + (long) i * n;
      long[] sampleIds = new long[n - 1];
      for (int j = 0; j < n; ++j) {
        SequenceOutput s = new SequenceOutput(r, listeners == null ? null : listeners.get(i), base + j, codec);
        seqs.add(s);
        byId.put(s.requestId, s);
        if (j > 0) {
          sampleIds[j - 1] = s.requestId;
        }
      }
      SequenceOutput first = byId.get(base);
      // The scheduler ends a sequence on these tokens; SequenceOutput keeps them out of the output.
      sched.submit(new SchedRequest(base, r.promptTokens(), r.maxTokens() + 1, t -> first.isStopToken(t, eosIds), 0,
          sampleIds));
    }
    LayerWork work = policy.layerWork();
    long steps = 0;
    while (sched.hasWork()) {
      StepPlan plan = sched.plan(null);
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
      for (StepPlan.Entry e : plan.entries()) {
        SequenceOutput s = byId.get(e.seqId());
        batch.add(kv.pageTable(e.seqId()), e.startPos(), e.tokens(), s.sampling());
        logits |= e.sample() && s.request.returnPromptLogits() && s.firstTokenNanos == 0;
      }
      if (logits) {
        batch.withLogits();
      }
      StepResult result = model.stepPaged(cache, batch);
      ++steps;
      List<Integer> sampled = new ArrayList<>();
      for (int i = 0; i < plan.entries().size(); ++i) {
        StepPlan.Entry e = plan.entries().get(i);
        if (!e.sample()) {
          continue;
        }
        SequenceOutput s = byId.get(e.seqId());
        int token = result.token(i);
        sampled.add(token);
        if (s.finish != null) {
          continue;  // already ended (a stop string); its cancellation lands at the next plan
        }
        if (s.firstTokenNanos == 0 && s.request.returnPromptLogits()) {
          s.promptLogits = result.logits(i);
        }
        s.accept(token, eosIds, config.maxModelLen() - 1);
        if (s.finish != null) {
          sched.cancel(s.requestId);
        }
      }
      sched.complete(sampled.stream().mapToInt(Integer::intValue).toArray());
    }
    LOG.debug("paged run: {} requests in {} steps, {} preemptions, prefix cache {} of {} tokens", requests.size(),
        steps, sched.preemptions(), kv.prefixTokensHit(), kv.prefixTokensQueried());
    List<GenerationResult> out = new ArrayList<>();
    for (SequenceOutput s : seqs) {
      out.add(s.result(start, model.shape().kvBytesPerToken()));
    }
    return out;
  }
}
