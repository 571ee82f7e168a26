package io.kvasir.sched;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.kvasir.cache.KvCacheManager;
import io.kvasir.cache.KvCacheManager.PageCopy;
import io.kvasir.cache.PagePool;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.Test;

/**
 * The scheduler and the KV cache manager against a simulated paged model: every slot of the
 * simulated KV holds (token, position), the model reads its whole context back through the
 * sequence's page table and hashes it into the next token. A wrong page table, a shared page
 * written, a missed copy-on-write or a stale prefix page changes the tokens or trips the position
 * check, so "every output equals the same request run alone" tests the bookkeeping end to end.
 */
class SchedulerTest {
  private static final Logger LOG = LogManager.getLogger(SchedulerTest.class);
  private static final int VOCAB = 61;
  private static final int STOP = 0;

  /** The paged KV of the simulation and the model that reads it. */
  private static final class PagedSim {
    final KvCacheManager kv;
    final long[] slots;  // token << 32 | position, -1 = never written
    long tokensComputed;

    PagedSim(KvCacheManager kv) {
      this.kv = kv;
      this.slots = new long[kv.pool().capacity() * kv.pageTokens()];
      Arrays.fill(slots, -1);
    }

    /** Runs a step: copies, appends, then one token per sampling entry. */
    int[] run(StepPlan plan) {
      int p = kv.pageTokens();
      for (PageCopy c : plan.copies()) {
        System.arraycopy(slots, c.src() * p, slots, c.dst() * p, p);
      }
      for (StepPlan.Entry e : plan.entries()) {
        long[] at = new long[e.tokens().length];
        kv.slots(e.seqId(), e.startPos(), at.length, at, 0);
        for (int i = 0; i < at.length; ++i) {
          slots[(int) at[i]] = ((long) e.tokens()[i] << 32) | (e.startPos() + i);
        }
        tokensComputed += at.length;
      }
      List<Integer> sampled = new ArrayList<>();
      for (StepPlan.Entry e : plan.entries()) {
        if (!e.sample()) {
          continue;
        }
        int len = e.startPos() + e.tokens().length;
        int[] table = kv.pageTable(e.seqId());
        int[] context = new int[len];
        for (int pos = 0; pos < len; ++pos) {
          long v = slots[table[pos / p] * p + pos % p];
          if (v == -1 || (int) v != pos) {
            fail("sequence " + e.seqId() + " reads position " + pos + " from a slot holding "
                + (v == -1 ? "nothing" : "position " + (int) v));
          }
          context[pos] = (int) (v >>> 32);
        }
        sampled.add(nextToken(context, len, e.seqId()));
      }
      return sampled.stream().mapToInt(Integer::intValue).toArray();
    }
  }

  // The "model": a hash of the whole context (so any wrong KV token changes it) and of the
  // sequence id (the sampling key: the samples of one prompt draw different tokens).
  static int nextToken(int[] context, int len, long seqId) {
    long h = 0x243f6a8885a308d3L ^ (seqId * 0x9e3779b97f4a7c15L);
    for (int i = 0; i < len; ++i) {
      h = (h ^ context[i]) * 0x100000001b3L;
      h ^= h >>> 29;
    }
    return (int) Math.floorMod(h, VOCAB);
  }

  // The same request run alone, with no paging at all.
  static int[] solo(SchedRequest r, long sampleId, int maxModelLen) {
    int[] t = Arrays.copyOf(r.prompt(), maxModelLen);
    int len = r.prompt().length;
    int outputs = 0;
    while (true) {
      int next = nextToken(t, len, sampleId);
      t[len++] = next;
      ++outputs;
      if (next == STOP || outputs >= r.maxNewTokens() || len >= maxModelLen) {
        return Arrays.copyOfRange(t, r.prompt().length, len);
      }
    }
  }

  @Test
  void thousandsOfRandomRequestsUnderTightMemoryEachEqualTheirSoloRun() {
    // A fixed seed and a fresh one (replay a logged seed with -Dkvasir.sched.seed=N).
    for (long seed : new long[] {20261129L, Long.getLong("kvasir.sched.seed", System.nanoTime())}) {
      for (boolean prefix : new boolean[] {true, false}) {
        runWorkload(seed, prefix);
      }
    }
  }

  private void runWorkload(long seed, boolean prefixCaching) {
    SplittableRandom rng = new SplittableRandom(seed);
    int pageTokens = 1 + rng.nextInt(16);
    int maxModelLen = 96 + rng.nextInt(160);
    // Tight: the longest sequence fits with a page or two to spare, far fewer than maxRunning do.
    int pages = (maxModelLen + 2 * pageTokens) / pageTokens + rng.nextInt(8);
    int maxRunning = 4 + rng.nextInt(12);
    SchedulerConfig config = new SchedulerConfig(maxRunning + rng.nextInt(200), maxRunning, maxModelLen);
    LOG.info("scheduler workload: seed {}, prefix caching {}, page {} tokens, {} pages, {}", seed, prefixCaching,
        pageTokens, pages, config);
    PagePool pool = new PagePool(pages);
    KvCacheManager kv = new KvCacheManager(pool, pageTokens, prefixCaching);
    Scheduler sched = new Scheduler(config, kv);
    PagedSim sim = new PagedSim(kv);

    int[][] prefixes = new int[4][];
    for (int i = 0; i < prefixes.length; ++i) {
      prefixes[i] = rng.ints(1 + rng.nextInt(maxModelLen / 2), 1, VOCAB).toArray();
    }
    int total = 1500;
    Map<Long, SchedRequest> requests = new HashMap<>();
    Map<Long, int[]> expected = new HashMap<>();
    Set<Long> cancelled = new HashSet<>();
    Map<Long, Finished> done = new HashMap<>();
    long nextId = 0;
    long nextSampleId = 1_000_000;
    int expectedDone = 0;
    int guard = 0;
    while (nextId < total || done.size() < expectedDone) {
      if (++guard > 2_000_000) {
        fail("the workload did not finish: " + done.size() + " of " + expectedDone + " done, waiting "
            + sched.waitingCount() + ", running " + sched.runningCount());
      }
      // Arrivals: a burst now and then.
      int arrivals = nextId < total && rng.nextInt(4) == 0 ? 1 + rng.nextInt(6) : 0;
      for (int a = 0; a < arrivals && nextId < total; ++a) {
        int n = rng.nextInt(5) == 0 ? 2 + rng.nextInt(2) : 1;
        long[] sampleIds = new long[n - 1];
        for (int k = 0; k < sampleIds.length; ++k) {
          sampleIds[k] = nextSampleId++;
        }
        SchedRequest r = randomRequest(rng, nextId++, prefixes, maxModelLen, sampleIds);
        requests.put(r.id(), r);
        expected.put(r.id(), solo(r, r.id(), maxModelLen));
        for (long sid : sampleIds) {
          requests.put(sid, r);
          expected.put(sid, solo(r, sid, maxModelLen));
        }
        expectedDone += n;
        sched.submit(r);
      }
      if (nextId > 0 && rng.nextInt(25) == 0) {
        long id = rng.nextLong(nextId);
        if (!done.containsKey(id)) {
          sched.cancel(id);
          cancelled.add(id);
          for (long sid : requests.get(id).sampleIds()) {
            cancelled.add(sid);  // ended with it if they have not split off yet
          }
        }
      }
      List<Finished> finished = new ArrayList<>();
      StepPlan plan = sched.plan(finished);
      assertTrue(plan.numTokens() <= config.maxBatchedTokens(), "token budget");
      assertTrue(sched.runningCount() <= config.maxRunning(), "running limit");
      finished.addAll(sched.complete(sim.run(plan)));
      for (Finished f : finished) {
        if (done.put(f.id(), f) != null) {
          fail("request " + f.id() + " finished twice");
        }
      }
      checkReferenceCounts(kv, sched, requests.keySet(), done.keySet());
    }
    assertEquals(expectedDone, done.size(), "every request and every sample completes");
    assertFalse(sched.hasWork());
    int preempted = 0;
    for (Finished f : done.values()) {
      int[] want = expected.get(f.id());
      if (f.reason() == Finished.Reason.CANCELLED) {
        assertTrue(cancelled.contains(f.id()));
        assertArrayEquals(Arrays.copyOf(want, f.output().length), f.output(),
            "a cancelled request's partial output is a prefix of its solo run");
      } else {
        assertArrayEquals(want, f.output(), "request " + f.id() + " (preempted " + f.preemptions() + " times)");
        assertEquals(want[want.length - 1] == STOP ? Finished.Reason.STOP
            : want.length == requests.get(f.id()).maxNewTokens() ? Finished.Reason.LENGTH : Finished.Reason.CONTEXT,
            f.reason());
      }
      preempted += f.preemptions() > 0 ? 1 : 0;
    }
    assertEquals(0, kv.liveSequences(), "no sequence left");
    assertEquals(0, pool.usedPages(), "no page leaked");
    LOG.info("  {} steps, {} tokens computed, {} preemptions ({} requests), prefix hits {} of {} tokens queried",
        sched.steps(), sim.tokensComputed, sched.preemptions(), preempted, kv.prefixTokensHit(),
        kv.prefixTokensQueried());
    assertTrue(sched.preemptions() > 0, "the memory was tight enough to preempt (seed " + seed + ")");
    if (prefixCaching) {
      assertTrue(kv.prefixTokensHit() > 0, "shared prefixes were found in the cache");
    }
  }

  private static SchedRequest randomRequest(SplittableRandom rng, long id, int[][] prefixes, int maxModelLen,
      long[] sampleIds) {
    int[] head = rng.nextInt(3) == 0 ? new int[0] : prefixes[rng.nextInt(prefixes.length)];
    int tail = 1 + rng.nextInt(Math.max(1, maxModelLen - head.length - 2) / 2 + 1);
    int len = Math.min(head.length + tail, maxModelLen - 1);
    int[] prompt = new int[len];
    System.arraycopy(head, 0, prompt, 0, Math.min(head.length, len));
    for (int i = Math.min(head.length, len); i < len; ++i) {
      prompt[i] = 1 + rng.nextInt(VOCAB - 1);
    }
    int maxNew = 1 + rng.nextInt(rng.nextInt(4) == 0 ? 200 : 30);
    return new SchedRequest(id, prompt, maxNew, t -> t == STOP, 0, sampleIds);
  }

  // Every used page's reference count equals the number of live page tables holding it.
  private static void checkReferenceCounts(KvCacheManager kv, Scheduler sched, Set<Long> ids, Set<Long> done) {
    Map<Integer, Integer> holders = new HashMap<>();
    for (long id : ids) {
      if (!kv.contains(id)) {
        continue;
      }
      assertFalse(done.contains(id), "a finished request still holds pages");
      for (int p : kv.pageTable(id)) {
        holders.merge(p, 1, Integer::sum);
      }
    }
    int used = 0;
    for (int p = 0; p < kv.pool().capacity(); ++p) {
      int refs = kv.pool().refCount(p);
      assertEquals(holders.getOrDefault(p, 0).intValue(), refs, "reference count of page " + p);
      used += refs > 0 ? 1 : 0;
    }
    assertEquals(used, kv.pool().usedPages());
  }

  @Test
  void refusesRequestsThatCouldNeverFitAndDuplicateIds() {
    KvCacheManager kv = new KvCacheManager(new PagePool(4), 16, true);
    Scheduler sched = new Scheduler(new SchedulerConfig(64, 4, 1000), kv);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> sched.submit(new SchedRequest(1, new int[60], 10, null, 0)));
    assertTrue(e.getMessage().contains("do not fit the KV cache"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> sched.submit(new SchedRequest(2, new int[1000], 1, null, 0)));
    assertTrue(e.getMessage().contains("context"), e.getMessage());
    sched.submit(new SchedRequest(3, new int[10], 5, null, 0));
    assertThrows(IllegalArgumentException.class, () -> sched.submit(new SchedRequest(3, new int[10], 5, null, 0)));
    assertThrows(IllegalArgumentException.class, () -> new SchedulerConfig(2, 4, 100), "budget below running limit");
  }

  @Test
  void decodesRunBeforePrefillChunksAndCancellationFreesPages() {
    KvCacheManager kv = new KvCacheManager(new PagePool(64), 16, false);
    Scheduler sched = new Scheduler(new SchedulerConfig(32, 8, 1000), kv);
    PagedSim sim = new PagedSim(kv);
    sched.submit(new SchedRequest(1, new int[] {5, 6, 7}, 100, null, 0));
    StepPlan first = sched.plan(null);
    assertEquals(1, first.entries().size());
    sched.complete(sim.run(first));
    sched.submit(new SchedRequest(2, new int[100], 100, null, 0));  // a long prompt arrives
    StepPlan second = sched.plan(null);
    assertEquals(2, second.entries().size());
    assertEquals(1, second.entries().get(0).tokens().length, "the decode goes first");
    assertEquals(31, second.entries().get(1).tokens().length, "the prompt gets the rest of the budget");
    assertFalse(second.entries().get(1).sample(), "a non-final chunk does not sample");
    sched.complete(sim.run(second));
    sched.cancel(2);
    List<Finished> finished = new ArrayList<>();
    StepPlan third = sched.plan(finished);
    assertEquals(1, finished.size());
    assertEquals(Finished.Reason.CANCELLED, finished.get(0).reason());
    assertFalse(kv.contains(2), "its pages are freed before the next step");
    assertEquals(1, third.entries().size());
    sched.complete(sim.run(third));
  }
}
