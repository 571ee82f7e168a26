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
    final long id;    // req.id(), or one of req.sampleIds() for a further sample
    int[] tokens;     // prompt followed by the output so far
    int length;       // valid entries of tokens
    int outputs;
    int preemptions;
    boolean forkPending;  // n > 1: the samples split off once all but the last prompt token is cached

    Seq(SchedRequest req, long id) {
      this.req = req;
      this.id = id;
      this.tokens = Arrays.copyOf(req.prompt(), req.prompt().length + Math.min(req.maxNewTokens(), 64));
      this.length = req.prompt().length;
      this.forkPending = id == req.id() && req.n() > 1;
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
  private final Set<Long> reservedSampleIds = new HashSet<>();  // samples not yet forked
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
    if (byId.containsKey(r.id()) || reservedSampleIds.contains(r.id())) {
      throw new IllegalArgumentException("request " + r.id() + " is already queued or running");
    }
    Set<Long> ids = new HashSet<>();
    ids.add(r.id());
    for (long sid : r.sampleIds()) {
      if (byId.containsKey(sid) || reservedSampleIds.contains(sid) || !ids.add(sid)) {
        throw new IllegalArgumentException("request " + r.id() + ": sample id " + sid + " is not unique");
      }
    }
    if (r.n() > config.maxRunning()) {
      throw new IllegalArgumentException("request " + r.id() + ": n=" + r.n() + " samples exceed maxRunning="
          + config.maxRunning());
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
    Seq s = new Seq(r, r.id());
    byId.put(r.id(), s);
    for (long sid : r.sampleIds()) {
      reservedSampleIds.add(sid);
    }
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
        int computed = kv.kvLen(s.id);
        int remaining = s.length - computed;
        if ((pass == 0) != (remaining == 1) || scheduled.contains(s)) {
          continue;
        }
        int n = Math.min(remaining, budget);
        boolean preemptedSelf = false;
        while (!kv.reserve(s.id, n)) {
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
      long id = s.id;
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
      if (s.forkPending) {
        fork(s);
      }
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

  // n > 1: the prompt is prefilled once; then each further sample shares its pages and computes
  // the prompt's last token again to sample its own first token (copy-on-write keeps the shared
  // page intact). Samples that do not fit the running limit wait at the head of the queue,
  // where admission finds the prompt's full pages in the prefix cache.
  private void fork(Seq parent) {
    parent.forkPending = false;
    int at = running.indexOf(parent) + 1;
    int promptLen = parent.req.prompt().length;
    for (long sid : parent.req.sampleIds()) {
      reservedSampleIds.remove(sid);
      Seq child = new Seq(parent.req, sid);
      byId.put(sid, child);
      if (running.size() < config.maxRunning()) {
        kv.fork(parent.id, sid);
        kv.truncate(sid, promptLen - 1);
        running.add(at++, child);
      } else {
        waiting.addFirst(child);
      }
    }
  }

  private StepPlan.Entry entry(Seq s, int start, int n) {
    return new StepPlan.Entry(s.id, start, Arrays.copyOfRange(s.tokens, start, start + n),
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
    kv.free(s.id);
    running.remove(s);
    waiting.addFirst(s);
    ++s.preemptions;
    ++preemptions;
  }

  private void retire(Seq s, Finished.Reason reason, List<Finished> out) {
    if (kv.contains(s.id)) {
      kv.free(s.id);
    }
    running.remove(s);
    waiting.remove(s);
    byId.remove(s.id);
    cancelRequests.remove(s.id);
    int promptLen = s.req.prompt().length;
    out.add(new Finished(s.id, Arrays.copyOfRange(s.tokens, promptLen, s.length), reason, s.preemptions));
    if (s.forkPending) {  // cancelled before its samples split off: they end with it
      for (long sid : s.req.sampleIds()) {
        reservedSampleIds.remove(sid);
        out.add(new Finished(sid, new int[0], reason, 0));
      }
    }
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
