package io.kvasir.sched;

import io.kvasir.cache.KvCacheManager;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Continuous batching with chunked prefill, first come first served.
 *
 * <p>Each {@link #plan} builds one step under {@link SchedulerConfig#maxBatchedTokens}: first one
 * token for every running sequence in decode and the next chunk of every running sequence still
 * in prefill (oldest first), then new sequences from the waiting queue while the budget, the
 * running limit and the KV pages allow. A waiting sequence that does not fit blocks the ones
 * behind it (no overtaking). When a running sequence cannot get its pages, the newest running
 * sequence is preempted: its pages are freed and it goes back to the head of the queue, to be
 * recomputed from its prompt and the output so far (prefix caching usually finds most of it).
 * The oldest sequence can always run once every younger one is preempted, because
 * {@link #submit} refuses a request that could not fit the pool alone: no deadlock, no lost
 * request.
 *
 * <p>{@link #complete} takes the step's sampled tokens, commits the K and V the step wrote and
 * retires finished sequences, freeing their pages. {@link #cancel} frees a request's pages at the
 * next step boundary (the step in flight may still be writing them).
 *
 * <p>Not thread-safe: one engine thread plans, runs and completes steps.
 */
public final class Scheduler {
  private static final class Seq {
    final SchedRequest req;
    int[] tokens;     // prompt followed by the output so far
    int length;       // valid entries of tokens
    int outputs;
    int preemptions;

    Seq(SchedRequest req) {
      this.req = req;
      this.tokens = Arrays.copyOf(req.prompt(), req.prompt().length + Math.min(req.maxNewTokens(), 64));
      this.length = req.prompt().length;
    }

    void add(int token) {
      if (length == tokens.length) {
        tokens = Arrays.copyOf(tokens, tokens.length * 2);
      }
      tokens[length++] = token;
      ++outputs;
    }
  }

  private final SchedulerConfig config;
  private final KvCacheManager kv;
  private final Deque<Seq> waiting = new ArrayDeque<>();
  private final List<Seq> running = new ArrayList<>();  // admission order, oldest first
  private final Map<Long, Seq> byId = new HashMap<>();
  private final Set<Long> cancelRequests = new HashSet<>();
  private StepPlan inFlight;
  private long preemptions;
  private long steps;

  public Scheduler(SchedulerConfig config, KvCacheManager kv) {
    this.config = config;
    this.kv = kv;
  }

  public SchedulerConfig config() {
    return config;
  }

  public KvCacheManager kvCache() {
    return kv;
  }

  /**
   * Queues a request.
   *
   * @throws IllegalArgumentException when its id is live, its prompt does not fit the context,
   *     or its longest possible sequence would not fit the KV pool even alone
   */
  public void submit(SchedRequest r) {
    if (byId.containsKey(r.id())) {
      throw new IllegalArgumentException("request " + r.id() + " is already queued or running");
    }
    int promptLen = r.prompt().length;
    if (promptLen >= config.maxModelLen()) {
      throw new IllegalArgumentException("request " + r.id() + ": prompt of " + promptLen
          + " tokens leaves no room for output in the context of " + config.maxModelLen() + " tokens");
    }
    long longest = Math.min((long) promptLen + r.maxNewTokens(), config.maxModelLen());
    long capacity = (long) kv.pool().capacity() * kv.pageTokens();
    // One page of slack: a sequence may hold a partly filled page and its private copy at once.
    if (longest + kv.pageTokens() > capacity) {
      throw new IllegalArgumentException("request " + r.id() + ": up to " + longest + " tokens of KV do not fit the "
          + "KV cache (" + kv.pool().capacity() + " pages of " + kv.pageTokens() + " tokens) even alone; raise the KV "
          + "budget or lower maxNewTokens");
    }
    Seq s = new Seq(r);
    byId.put(r.id(), s);
    waiting.addLast(s);
  }

  /** Asks to drop a request; its pages are freed at the next step boundary. Unknown ids are ignored. */
  public void cancel(long id) {
    if (byId.containsKey(id)) {
      cancelRequests.add(id);
    }
  }

  public boolean hasWork() {
    return !byId.isEmpty();
  }

  public int waitingCount() {
    return waiting.size();
  }

  public int runningCount() {
    return running.size();
  }

  /** Preemptions so far. */
  public long preemptions() {
    return preemptions;
  }

  public long steps() {
    return steps;
  }

  /**
   * Plans the next step. Returns the cancelled requests through {@code finished} (may be null).
   * An empty plan means nothing can run (nothing queued).
   */
  public StepPlan plan(List<Finished> finished) {
    if (inFlight != null) {
      throw new IllegalStateException("the previous step was not completed");
    }
    applyCancellations(finished);
    int budget = config.maxBatchedTokens();
    List<StepPlan.Entry> entries = new ArrayList<>();
    Set<Seq> scheduled = new HashSet<>();
    // Running sequences, oldest first: every decode (1 token) before any prefill chunk, so a long
    // prompt never stalls the sequences already generating.
    for (int pass = 0; pass < 2; ++pass) {
      for (int i = 0; i < running.size() && budget > 0; ++i) {
        Seq s = running.get(i);
        int computed = kv.kvLen(s.req.id());
        int remaining = s.length - computed;
        if ((pass == 0) != (remaining == 1) || scheduled.contains(s)) {
          continue;
        }
        int n = Math.min(remaining, budget);
        boolean preemptedSelf = false;
        while (!kv.reserve(s.req.id(), n)) {
          Seq victim = newestUnscheduled(scheduled);
          preempt(victim);
          if (victim == s) {
            preemptedSelf = true;
            break;
          }
        }
        if (preemptedSelf) {
          --i;  // the list shrank at or after i
          continue;
        }
        entries.add(entry(s, computed, n));
        scheduled.add(s);
        budget -= n;
      }
    }
    // Waiting sequences, in order, while they fit.
    while (budget > 0 && running.size() < config.maxRunning() && !waiting.isEmpty()) {
      Seq s = waiting.peekFirst();
      long id = s.req.id();
      int cached = kv.admit(id, Arrays.copyOf(s.tokens, s.length), s.req.extraKey());
      int n = Math.min(s.length - cached, budget);
      if (!kv.reserve(id, n)) {
        kv.free(id);
        break;
      }
      waiting.pollFirst();
      running.add(s);
      entries.add(entry(s, cached, n));
      scheduled.add(s);
      budget -= n;
    }
    inFlight = new StepPlan(kv.drainCopies(), entries);
    if (!entries.isEmpty()) {
      ++steps;
    }
    return inFlight;
  }

  /**
   * Completes the planned step: {@code sampled[i]} is the token sampled for the i-th entry of the
   * plan that samples (entries that do not sample are skipped in the numbering). Returns the
   * requests that finished, cancelled ones included.
   */
  public List<Finished> complete(int[] sampled) {
    if (inFlight == null) {
      throw new IllegalStateException("no step in flight");
    }
    StepPlan plan = inFlight;
    inFlight = null;
    List<Finished> finished = new ArrayList<>();
    int next = 0;
    for (StepPlan.Entry e : plan.entries()) {
      Seq s = byId.get(e.seqId());
      kv.commit(e.seqId(), e.tokens(), 0, e.tokens().length);
      if (!e.sample()) {
        continue;
      }
      if (next >= sampled.length) {
        throw new IllegalArgumentException("the step sampled " + sampled.length + " tokens but its plan has more "
            + "sampling entries");
      }
      int token = sampled[next++];
      s.add(token);
      Finished.Reason reason = null;
      if (s.req.stop() != null && s.req.stop().test(token)) {
        reason = Finished.Reason.STOP;
      } else if (s.outputs >= s.req.maxNewTokens()) {
        reason = Finished.Reason.LENGTH;
      } else if (s.length >= config.maxModelLen()) {
        reason = Finished.Reason.CONTEXT;
      }
      if (reason != null) {
        retire(s, reason, finished);
      }
    }
    if (next != sampled.length) {
      throw new IllegalArgumentException("the step sampled " + sampled.length + " tokens for " + next
          + " sampling entries");
    }
    applyCancellations(finished);
    return finished;
  }

  private StepPlan.Entry entry(Seq s, int start, int n) {
    return new StepPlan.Entry(s.req.id(), start, Arrays.copyOfRange(s.tokens, start, start + n),
        start + n == s.length);
  }

  // The youngest running sequence not yet in this step (the one preempted to free pages).
  private Seq newestUnscheduled(Set<Seq> scheduled) {
    for (int i = running.size() - 1; i >= 0; --i) {
      if (!scheduled.contains(running.get(i))) {
        return running.get(i);
      }
    }
    throw new IllegalStateException("no running sequence left to preempt");
  }

  private void preempt(Seq s) {
    kv.free(s.req.id());
    running.remove(s);
    waiting.addFirst(s);
    ++s.preemptions;
    ++preemptions;
  }

  private void retire(Seq s, Finished.Reason reason, List<Finished> out) {
    if (kv.contains(s.req.id())) {
      kv.free(s.req.id());
    }
    running.remove(s);
    waiting.remove(s);
    byId.remove(s.req.id());
    cancelRequests.remove(s.req.id());
    int promptLen = s.req.prompt().length;
    out.add(new Finished(s.req.id(), Arrays.copyOfRange(s.tokens, promptLen, s.length), reason, s.preemptions));
  }

  private void applyCancellations(List<Finished> out) {
    if (cancelRequests.isEmpty()) {
      return;
    }
    List<Finished> sink = out != null ? out : new ArrayList<>();
    for (Iterator<Long> it = cancelRequests.iterator(); it.hasNext(); ) {
      Seq s = byId.get(it.next());
      it.remove();
      if (s != null) {
        retire(s, Finished.Reason.CANCELLED, sink);
      }
    }
  }
}
