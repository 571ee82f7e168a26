package io.kvasir.engine;

import io.kvasir.cache.KvCacheManager;
import io.kvasir.nativeapi.Model;
import io.kvasir.nativeapi.PagedKvCache;
import io.kvasir.nativeapi.PagedStepBatch;
import io.kvasir.nativeapi.StepBatch;
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
 * Token semantics are {@link BatchRun}'s: EOS and stop ids end a sequence unseen, stop strings
 * cut the text, {@code maxTokens} and the context end it with LENGTH.
 */
final class PagedRun {
  private static final Logger LOG = LogManager.getLogger(PagedRun.class);

  /** One request in flight. */
  private static final class Seq {
    final GenerationRequest request;
    final TokenListener listener;
    final long id;
    final List<Integer> generated = new ArrayList<>();
    final StringBuilder text = new StringBuilder();
    final TextCodec.Detokenizer detokenizer;
    FinishReason finish;
    long firstTokenNanos;
    long lastTokenNanos;
    float[] promptLogits;

    Seq(GenerationRequest request, TokenListener listener, long id, TextCodec codec) {
      this.request = request;
      this.listener = listener;
      this.id = id;
      this.detokenizer = codec == null ? null : codec.newDetokenizer(request.promptTokens());
    }

    StepBatch.Sampling sampling() {
      SamplingParams p = request.sampling();
      return new StepBatch.Sampling(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(), p.seed(), id);
    }
  }

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
    final long start = System.nanoTime();
    Scheduler sched = new Scheduler(config, kv);
    Map<Long, Seq> byId = new HashMap<>();
    List<Seq> seqs = new ArrayList<>();
    for (int i = 0; i < requests.size(); ++i) {
      GenerationRequest r = requests.get(i);
      if (r.promptTokens().length >= config.maxModelLen() - 1) {
        throw new IllegalArgumentException("the prompt has " + r.promptTokens().length + " tokens; the context holds "
            + (config.maxModelLen() - 1) + " (prompt plus at least one generated token)");
      }
      if (!r.stopStrings().isEmpty() && codec == null) {
        throw new IllegalArgumentException("stop strings need a tokenizer; this model has none");
      }
      Seq s = new Seq(r, listeners == null ? null : listeners.get(i), firstRequestId + i, codec);
      // The scheduler ends a sequence on these tokens; accept() keeps them out of the output.
      sched.submit(new SchedRequest(s.id, r.promptTokens(), r.maxTokens() + 1,
          t -> (!r.ignoreEos() && contains(eosIds, t)) || r.stopTokenIds().contains(t), 0));
      seqs.add(s);
      byId.put(s.id, s);
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
        Seq s = byId.get(e.seqId());
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
        Seq s = byId.get(e.seqId());
        int token = result.token(i);
        sampled.add(token);
        if (s.finish != null) {
          continue;  // already ended (a stop string); its cancellation lands at the next plan
        }
        if (s.firstTokenNanos == 0 && s.request.returnPromptLogits()) {
          s.promptLogits = result.logits(i);
        }
        accept(s, token);
        if (s.finish != null) {
          sched.cancel(s.id);
        }
      }
      sched.complete(sampled.stream().mapToInt(Integer::intValue).toArray());
    }
    LOG.debug("paged run: {} requests in {} steps, {} preemptions, prefix cache {} of {} tokens", requests.size(),
        steps, sched.preemptions(), kv.prefixTokensHit(), kv.prefixTokensQueried());
    List<GenerationResult> out = new ArrayList<>();
    for (Seq s : seqs) {
      out.add(result(s, start));
    }
    return out;
  }

  // As BatchRun.accept: a stop token ends the sequence unseen; otherwise it is output.
  private void accept(Seq s, int token) {
    long now = System.nanoTime();
    if (s.firstTokenNanos == 0) {
      s.firstTokenNanos = now;
    }
    s.lastTokenNanos = now;
    if ((!s.request.ignoreEos() && contains(eosIds, token)) || s.request.stopTokenIds().contains(token)) {
      s.finish = FinishReason.STOP;
      return;
    }
    s.generated.add(token);
    String delta = s.detokenizer == null ? null : s.detokenizer.push(token);
    String visible = delta == null ? null : BatchRun.appendText(s.text, s.request.stopStrings(), delta);
    if (s.listener != null) {
      s.listener.onToken(token, visible);
    }
    if (visible != null && visible.length() < delta.length()) {
      s.finish = FinishReason.STOP;
    } else if (s.generated.size() >= s.request.maxTokens()
        || s.request.promptTokens().length + s.generated.size() >= config.maxModelLen()) {
      s.finish = FinishReason.LENGTH;
    }
  }

  private GenerationResult result(Seq s, long start) {
    if (s.finish == null) {
      s.finish = FinishReason.LENGTH;
    }
    if (s.detokenizer != null && s.finish == FinishReason.LENGTH) {
      s.text.append(s.detokenizer.flush());
    }
    int[] tokens = s.generated.stream().mapToInt(Integer::intValue).toArray();
    int promptLen = s.request.promptTokens().length;
    GenerationStats stats = new GenerationStats(promptLen, tokens.length, (s.firstTokenNanos - start) / 1e6,
        (s.lastTokenNanos - s.firstTokenNanos) / 1e6,
        (long) (promptLen + Math.max(0, tokens.length - 1)) * model.shape().kvBytesPerToken());
    return new GenerationResult(tokens, s.detokenizer == null ? null : s.text.toString(), s.finish, stats,
        s.promptLogits);
  }

  private static boolean contains(int[] ids, int token) {
    for (int id : ids) {
      if (id == token) {
        return true;
      }
    }
    return false;
  }
}
