package io.kvasir.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.Test;

/** The page pool against a shadow model: reference counts, LRU reuse, prefix sharing, no leaks. */
class PagePoolTest {
  private static final Logger LOG = LogManager.getLogger(PagePoolTest.class);
  private static final int P = 16;

  @Test
  void freedPagesAreReusedLeastRecentlyFreedFirstAndKeepTheirPrefix() {
    PagePool pool = new PagePool(3);
    int a = pool.allocate();
    int b = pool.allocate();
    int c = pool.allocate();
    assertEquals(0, pool.freePages());
    assertThrows(IllegalStateException.class, pool::allocate, "an empty pool refuses, it does not block");
    int[] tokens = new int[P];
    PrefixKey ka = PrefixKey.of(PrefixKey.ROOT, tokens, 0, P, 0);
    pool.publish(a, ka);
    pool.release(b);
    pool.release(a);
    pool.release(c);
    assertEquals(3, pool.freePages());
    assertEquals(a, pool.lookup(ka), "a freed page keeps its prefix");
    assertEquals(1, pool.refCount(a));
    assertEquals(b, pool.allocate(), "b was freed first");
    assertEquals(c, pool.allocate());
    pool.release(a);
    assertEquals(a, pool.allocate(), "the cached page goes when nothing else is free");
    assertEquals(1, pool.evictions());
    assertEquals(-1, pool.lookup(ka), "its prefix went with it");
    assertEquals(2, pool.queries());
    assertEquals(1, pool.hits());
    assertThrows(IllegalStateException.class, () -> {
      pool.release(b);
      pool.release(b);
    }, "a double free is an error");
  }

  @Test
  void keysCompareTokensNotJustHashes() {
    int[] t = new int[2 * P];
    for (int i = 0; i < t.length; ++i) t[i] = i;
    PrefixKey first = PrefixKey.of(PrefixKey.ROOT, t, 0, P, 0);
    assertEquals(first, PrefixKey.of(PrefixKey.ROOT, t.clone(), 0, P, 0));
    assertNotEquals(first, PrefixKey.of(PrefixKey.ROOT, t, P, 2 * P, 0), "other tokens");
    assertNotEquals(first, PrefixKey.of(first.hash(), t, 0, P, 0), "same tokens after another parent");
    assertNotEquals(first, PrefixKey.of(PrefixKey.ROOT, t, 0, P, 7), "another extra key");
    PagePool pool = new PagePool(2);
    int p = pool.allocate();
    pool.publish(p, first);
    int q = pool.allocate();
    pool.publish(q, PrefixKey.of(PrefixKey.ROOT, t.clone(), 0, P, 0));
    assertEquals(1, pool.cachedPages(), "a second page with a key already held stays private");
  }

  /** A request in the shadow model: its pages in order, how many of them came from the cache. */
  private record Held(List<Integer> pages, int[] tokens) {}

  @Test
  void randomRequestsWithSharedPrefixesNeverLeakAndAlwaysGetTheirOwnContent() {
    long seed = new SplittableRandom().nextLong();
    LOG.info("page pool random test: seed {}", seed);
    SplittableRandom rng = new SplittableRandom(seed);
    PagePool pool = new PagePool(64);
    int[][] prefixes = new int[6][];
    for (int i = 0; i < prefixes.length; ++i) {
      prefixes[i] = rng.ints(P * rng.nextInt(1, 6), 0, 50).toArray();
    }
    Map<Integer, int[]> content = new HashMap<>();  // what the shadow wrote into each used page
    List<Held> live = new ArrayList<>();
    int[] refs = new int[pool.capacity()];
    for (int step = 0; step < 5000; ++step) {
      if (!live.isEmpty() && (rng.nextInt(3) == 0 || pool.freePages() < 12)) {
        Held h = live.remove(rng.nextInt(live.size()));
        for (int i = h.pages().size() - 1; i >= 0; --i) {
          int p = h.pages().get(i);
          pool.release(p);
          --refs[p];
        }
        continue;
      }
      int[] prefix = prefixes[rng.nextInt(prefixes.length)];
      int[] tail = rng.ints(rng.nextInt(0, 3 * P), 0, 50).toArray();
      int[] tokens = Arrays.copyOf(prefix, prefix.length + tail.length);
      System.arraycopy(tail, 0, tokens, prefix.length, tail.length);
      int pagesNeeded = (tokens.length + P - 1) / P;
      if (pagesNeeded > pool.freePages()) {
        continue;  // the scheduler would wait or preempt; looked-up pages may even be free ones
      }
      List<Integer> pages = new ArrayList<>();
      long parent = PrefixKey.ROOT;
      boolean sharing = true;
      for (int i = 0; i < pagesNeeded; ++i) {
        int from = i * P;
        int to = Math.min(tokens.length, from + P);
        int[] slice = Arrays.copyOfRange(tokens, from, to);
        int page = -1;
        PrefixKey k = to - from == P ? PrefixKey.of(parent, tokens, from, to, 0) : null;
        if (k != null && sharing) {
          page = pool.lookup(k);
        }
        if (page >= 0) {
          assertTrue(Arrays.equals(content.get(page), slice), "a cache hit holds exactly these tokens; seed " + seed);
        } else {
          sharing = false;  // the chain broke: every later page is this request's own
          page = pool.allocate();
          assertEquals(0, refs[page], "a fresh page was held by nobody; seed " + seed);
          content.put(page, slice);
          if (k != null) {
            pool.publish(page, k);
          }
        }
        ++refs[page];
        pages.add(page);
        if (k != null) {
          parent = k.hash();
        }
      }
      live.add(new Held(pages, tokens));
      int used = 0;
      for (int p = 0; p < refs.length; ++p) {
        assertEquals(refs[p], pool.refCount(p), "page " + p + "; seed " + seed);
        used += refs[p] > 0 ? 1 : 0;
      }
      assertEquals(used, pool.usedPages(), "seed " + seed);
      assertEquals(pool.capacity(), pool.usedPages() + pool.freePages());
    }
    for (Held h : live) {
      for (int p : h.pages()) {
        pool.release(p);
      }
    }
    assertEquals(pool.capacity(), pool.freePages(), "every page back; seed " + seed);
    assertTrue(pool.hits() > 0 && pool.hits() < pool.queries(), "the prefixes were shared: " + pool.hits() + "/"
        + pool.queries());
    assertTrue(pool.evictions() > 0, "tight memory evicted cached pages");
  }
}
