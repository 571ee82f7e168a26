package io.kvasir.sched;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.kvasir.cache.KvCacheManager;
import io.kvasir.cache.PagePool;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.KvCache;
import io.kvasir.nativeapi.Model;
import io.kvasir.nativeapi.ModelShape;
import io.kvasir.nativeapi.PagedKvCache;
import io.kvasir.nativeapi.PagedStepBatch;
import io.kvasir.nativeapi.StepBatch;
import io.kvasir.nativeapi.StepResult;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.Test;

/**
 * The scheduler, the KV cache manager and the native paged step together, on a random model on
 * the CPU: hundreds of requests with shared prefixes, bursts, cancellations and preemptions under
 * a tight page pool, each compared with the same request run alone on a slot cache (greedy). The
 * CPU step is exact under batching, chunking and paging, so tokens must be identical up to the
 * first step where the solo run's top-2 logit margin is below 1e-4, and logits equal within fp32
 * rounding (1e-5 of the spread, far below any real difference).
 */
class PagedModelSchedulerTest {
  private static final Logger LOG = LogManager.getLogger(PagedModelSchedulerTest.class);
  private static final int VOCAB = 97;
  private static final int STOP = 0;
  private static final int MAX_LEN = 96;
  private static final int PAGE = 8;

  private static ModelShape shape(DType dtype) {
    return new ModelShape(VOCAB, 64, 96, 2, 4, 2, 64, MAX_LEN, 1e-5f, 10000f, "default", 1f, 1f, 1f, MAX_LEN, false,
        false, true, dtype);
  }

  /** A solo run: output tokens and, per output token, the logits it was chosen from. */
  private record Solo(int[] output, List<float[]> logits) {}

  private static Solo solo(Model model, SchedRequest r) {
    try (KvCache cache = KvCache.create(model, 1, MAX_LEN)) {
      List<Integer> out = new ArrayList<>();
      List<float[]> logits = new ArrayList<>();
      int[] next = r.prompt();
      int pos = 0;
      while (true) {
        StepResult res = model.step(cache, new StepBatch().add(0, pos, next, StepBatch.Sampling.greedy(r.id()))
            .withLogits());
        pos += next.length;
        int token = res.token(0);
        out.add(token);
        logits.add(res.logits(0));
        if (token == STOP || out.size() >= r.maxNewTokens() || pos + 1 > MAX_LEN - 1) {
          return new Solo(out.stream().mapToInt(Integer::intValue).toArray(), logits);
        }
        next = new int[] {token};
      }
    }
  }

  private static double margin(float[] logits) {
    float a = Float.NEGATIVE_INFINITY, b = Float.NEGATIVE_INFINITY;
    for (float x : logits) {
      if (x > a) {
        b = a;
        a = x;
      } else if (x > b) {
        b = x;
      }
    }
    return a - b;
  }

  @Test
  void scheduledPagedRequestsEqualTheirSoloRuns() {
    run(20261129L, DType.BF16, 0, 300);
  }

  @Test
  void questWithKCoveringEveryPageEqualsFullAttention() {
    run(7L, DType.F32, MAX_LEN / PAGE, 80);
  }

  private void run(long seed, DType dtype, int questPages, int total) {
    SplittableRandom rng = new SplittableRandom(seed);
    try (Model model = Model.create(Backend.CPU, 0, shape(dtype))) {
      model.randomize(seed, 0.15f);
      int pages = MAX_LEN / PAGE + 2 + 6;  // the longest sequence and a few more pages: preemptions
      PagePool pool = new PagePool(pages);
      KvCacheManager kv = new KvCacheManager(pool, PAGE, true);
      Scheduler sched = new Scheduler(new SchedulerConfig(48, 6, MAX_LEN), kv);
      LOG.info("paged scheduler on the CPU: seed {}, {}, {} pages of {}, quest {}", seed, dtype, pages, PAGE,
          questPages);
      int[][] prefixes = new int[3][];
      for (int i = 0; i < prefixes.length; ++i) {
        prefixes[i] = rng.ints(8 + rng.nextInt(40), 1, VOCAB).toArray();
      }
      Map<Long, SchedRequest> requests = new HashMap<>();
      Map<Long, Finished> done = new HashMap<>();
      Map<Long, List<float[]>> logitsOf = new HashMap<>();
      long nextId = 0;
      try (PagedKvCache cache = PagedKvCache.create(model, pages, PAGE, questPages > 0)) {
        for (int guard = 0; done.size() < total; ++guard) {
          if (guard > 100_000) {
            fail("the workload did not finish: " + done.size() + " of " + total);
          }
          int arrivals = nextId < total && rng.nextInt(3) == 0 ? 1 + rng.nextInt(5) : 0;
          for (int a = 0; a < arrivals && nextId < total; ++a) {
            int[] head = prefixes[rng.nextInt(prefixes.length)];
            int tail = 1 + rng.nextInt(24);
            int[] prompt = Arrays.copyOf(head, Math.min(head.length + tail, MAX_LEN - 2));
            for (int i = head.length; i < prompt.length; ++i) {
              prompt[i] = 1 + rng.nextInt(VOCAB - 1);
            }
            SchedRequest r = new SchedRequest(nextId++, prompt, 1 + rng.nextInt(24), t -> t == STOP, 0);
            requests.put(r.id(), r);
            sched.submit(r);
          }
          if (nextId > 0 && rng.nextInt(40) == 0) {
            sched.cancel(rng.nextLong(nextId));
          }
          List<Finished> finished = new ArrayList<>();
          StepPlan plan = sched.plan(finished);
          if (!plan.copies().isEmpty()) {
            cache.copyPages(plan.copies().stream().mapToInt(c -> c.src()).toArray(),
                plan.copies().stream().mapToInt(c -> c.dst()).toArray());
          }
          int[] sampled = new int[0];
          if (!plan.isEmpty()) {
            PagedStepBatch batch = new PagedStepBatch().withLogits();
            if (questPages > 0) {
              batch.quest(questPages);
            }
            for (StepPlan.Entry e : plan.entries()) {
              batch.add(kv.pageTable(e.seqId()), e.startPos(), e.tokens(), StepBatch.Sampling.greedy(e.seqId()));
            }
            StepResult res = model.stepPaged(cache, batch);
            List<Integer> out = new ArrayList<>();
            for (int i = 0; i < plan.entries().size(); ++i) {
              StepPlan.Entry e = plan.entries().get(i);
              if (e.sample()) {
                out.add(res.token(i));
                logitsOf.computeIfAbsent(e.seqId(), k -> new ArrayList<>()).add(res.logits(i));
              }
            }
            sampled = out.stream().mapToInt(Integer::intValue).toArray();
          }
          finished.addAll(sched.complete(sampled));
          for (Finished f : finished) {
            done.put(f.id(), f);
          }
        }
      }
      assertEquals(0, kv.liveSequences());
      assertEquals(0, pool.usedPages(), "no page leaked");
      int compared = 0;
      for (Finished f : done.values()) {
        Solo want = solo(model, requests.get(f.id()));
        // A preempted request's logits were recorded once per (re)computation of its last step;
        // its final output's tokens are what must agree.
        List<float[]> got = logitsOf.getOrDefault(f.id(), List.of());
        int n = f.reason() == Finished.Reason.CANCELLED ? f.output().length : want.output().length;
        if (f.reason() != Finished.Reason.CANCELLED) {
          assertEquals(want.output().length, f.output().length, "request " + f.id() + " output length");
        }
        for (int i = 0; i < n; ++i) {
          if (want.output()[i] != f.output()[i]) {
            assertTrue(margin(want.logits().get(i)) < 1e-4, "request " + f.id() + " differs from its solo run at "
                + "output " + i + " where the solo margin is " + margin(want.logits().get(i)));
            break;
          }
        }
        if (f.preemptions() == 0 && f.reason() != Finished.Reason.CANCELLED) {
          for (int i = 0; i < n; ++i) {
            float[] a = want.logits().get(i);
            float[] b = got.get(i);
            double spread = margin(a) + 1;
            for (int v = 0; v < VOCAB; ++v) {
              if (Math.abs(a[v] - b[v]) > 1e-5 * spread + 1e-6) {
                fail("request " + f.id() + " output " + i + " logit " + v + ": " + b[v] + " vs solo " + a[v]);
              }
            }
          }
          ++compared;
        }
      }
      LOG.info("  {} requests, {} steps, {} preemptions, prefix hits {} of {} tokens; logits compared for {}",
          done.size(), sched.steps(), sched.preemptions(), kv.prefixTokensHit(), kv.prefixTokensQueried(), compared);
      assertTrue(sched.preemptions() > 0, "the pool was tight enough to preempt");
      assertTrue(kv.prefixTokensHit() > 0, "shared prefixes were reused");
    }
  }
}
