package io.kvasir.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.cache.KvCacheManager.PageCopy;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Page tables: prefix sharing, all-or-nothing reservation, copy-on-write after a fork, release. */
class KvCacheManagerTest {
  private static final int P = 4;

  private static int[] range(int from, int to) {
    return IntStream.range(from, to).toArray();
  }

  // Admits, reserves and commits a whole prompt, as a prefill would.
  private static void prefill(KvCacheManager kv, long id, int[] prompt) {
    int cached = kv.admit(id, prompt, 0);
    assertTrue(kv.reserve(id, prompt.length - cached));
    kv.commit(id, prompt, cached, prompt.length - cached);
  }

  @Test
  void aSecondPromptSharesTheFullPagesButComputesItsLastToken() {
    KvCacheManager kv = new KvCacheManager(new PagePool(16), P, true);
    int[] prompt = range(100, 110);  // 2 full pages + 2 tokens
    prefill(kv, 1, prompt);
    assertEquals(3, kv.numPages(1));
    assertEquals(8, kv.admit(2, prompt, 0), "two full pages are shared");
    assertArrayEquals(java.util.Arrays.copyOf(kv.pageTable(1), 2), kv.pageTable(2));
    assertEquals(2, kv.pool().refCount(kv.pageTable(1)[0]));
    int[] exact = range(100, 108);  // exactly two pages: the last token must still be computed
    assertEquals(4, kv.admit(3, exact, 0));
    assertEquals(0, kv.admit(4, prompt, 7), "another extra key shares nothing");
    assertEquals(0, kv.admit(5, range(101, 111), 0), "another first page shares nothing");
    for (long id = 1; id <= 5; ++id) {
      kv.free(id);
    }
    assertEquals(0, kv.pool().usedPages());
    assertEquals(8, kv.admit(6, prompt, 0), "freed pages stay cached");
    assertEquals(0, new KvCacheManager(new PagePool(16), P, false).admit(1, prompt, 0), "caching off");
  }

  @Test
  void reserveIsAllOrNothingAndSlotsFollowThePageTable() {
    KvCacheManager kv = new KvCacheManager(new PagePool(3), P, true);
    kv.admit(1, range(0, 5), 0);
    assertEquals(2, kv.pagesNeeded(1, 5));
    assertFalse(kv.reserve(1, 13), "13 tokens need 4 pages of 3");
    assertEquals(0, kv.numPages(1), "a refused reservation takes nothing");
    assertTrue(kv.reserve(1, 5));
    long[] slots = new long[5];
    kv.slots(1, 0, 5, slots, 0);
    int[] table = kv.pageTable(1);
    for (int pos = 0; pos < 5; ++pos) {
      assertEquals((long) table[pos / P] * P + pos % P, slots[pos]);
    }
    assertThrows(IllegalArgumentException.class, () -> kv.slots(1, 6, 3, new long[3], 0), "unreserved positions");
    assertThrows(IllegalStateException.class, () -> kv.commit(1, new int[9], 0, 9), "commit past the reservation");
  }

  @Test
  void forkSharesPagesAndTheFirstWriteIntoTheSharedPartialPageCopiesIt() {
    PagePool pool = new PagePool(8);
    KvCacheManager kv = new KvCacheManager(pool, P, true);
    prefill(kv, 1, range(0, 6));  // page 0 full, page 1 half
    int[] parent = kv.pageTable(1);
    kv.fork(1, 2);
    assertArrayEquals(parent, kv.pageTable(2));
    assertEquals(2, pool.refCount(parent[1]));
    assertEquals(1, kv.pagesNeeded(2, 1), "one page for the private copy");
    assertTrue(kv.reserve(2, 1));
    List<PageCopy> copies = kv.drainCopies();
    assertEquals(1, copies.size());
    assertEquals(parent[1], copies.get(0).src());
    int child = kv.pageTable(2)[1];
    assertEquals(child, copies.get(0).dst());
    assertNotEquals(parent[1], child);
    assertEquals(1, pool.refCount(parent[1]), "the parent owns its page again");
    assertEquals(parent[0], kv.pageTable(2)[0], "the full page stays shared");
    assertEquals(0, kv.pagesNeeded(1, 1), "the parent writes in place now");
    assertTrue(kv.reserve(1, 1));
    assertTrue(kv.drainCopies().isEmpty());
    kv.free(1);
    kv.free(2);
    assertEquals(0, pool.usedPages());
    assertThrows(IllegalStateException.class, () -> kv.free(2), "double free");
  }

  @Test
  void truncateReleasesThePagesPastTheCutAndAPageRewrittenFromItsFirstRow() {
    PagePool pool = new PagePool(8);
    KvCacheManager kv = new KvCacheManager(pool, P, true);
    prefill(kv, 1, range(0, 9));  // pages: 4 + 4 + 1
    int[] table = kv.pageTable(1);
    kv.fork(1, 2);
    kv.truncate(2, 8);  // position 8 starts page 2: the child must not rewrite the shared page
    assertEquals(2, kv.numPages(2));
    assertEquals(1, pool.refCount(table[2]), "the parent keeps page 2 alone");
    assertEquals(1, kv.pagesNeeded(2, 1), "a fresh page for position 8");
    kv.truncate(2, 7);  // position 7 is inside page 1, shared: reserve copies it
    assertEquals(1, kv.pagesNeeded(2, 1), "position 7 lands in shared page 1: a private copy");
    assertThrows(IllegalArgumentException.class, () -> kv.truncate(2, 8), "truncate cannot grow");
    kv.free(1);
    kv.free(2);
    assertEquals(0, pool.usedPages());
    // A cut inside a published (full) page moves back to its first row: that page is never rewritten.
    prefill(kv, 3, range(0, 8));  // two full pages, both published
    int[] full = kv.pageTable(3);
    kv.fork(3, 4);
    kv.free(3);  // the child alone holds them now: no copy-on-write would protect page 1
    assertEquals(4, kv.truncate(4, 7));
    assertEquals(1, kv.numPages(4));
    assertEquals(0, pool.refCount(full[1]), "the published page went back to the cache");
    assertTrue(kv.reserve(4, 4));
    kv.commit(4, range(4, 8), 0, 4);  // recomputed rows into an unnamed page, published anew (no "already published")
    assertEquals(8, kv.kvLen(4));
    kv.free(4);
  }

  // A sample that recomputes the prompt's last token publishes that page under its own position's
  // key. It once kept the parent's chain hash (one page further on), so a later prompt found the
  // rewritten page at the next position: SchedulerTest seed 32320872362373, pages of 1 token.
  @Test
  void pagesRewrittenAfterATruncateArePublishedUnderTheirOwnPosition() {
    for (int pageTokens : new int[] {1, 4}) {
      PagePool pool = new PagePool(64);
      KvCacheManager kv = new KvCacheManager(pool, pageTokens, true);
      int[] prompt = range(10, 10 + 5 * pageTokens);  // five full pages
      prefill(kv, 1, prompt);
      kv.fork(1, 2);
      int kept = kv.truncate(2, prompt.length - 1);
      assertTrue(kv.reserve(2, prompt.length - kept));
      kv.commit(2, prompt, kept, prompt.length - kept);  // the last page again, by the sample
      // A prompt continuing with the last page's tokens once more: its sixth page is not cached.
      int[] longer = java.util.Arrays.copyOf(prompt, prompt.length + pageTokens + 1);
      System.arraycopy(prompt, prompt.length - pageTokens, longer, prompt.length, pageTokens);
      assertEquals(5 * pageTokens, kv.admit(3, longer, 0), "page size " + pageTokens + ": five pages hit, not six");
      int[] table = kv.pageTable(3);
      assertArrayEquals(java.util.Arrays.copyOf(kv.pageTable(1), 5), table, "the parent's pages, in order");
      kv.free(1);
      kv.free(2);
      kv.free(3);
      assertEquals(0, pool.usedPages());
    }
  }

  @Test
  void generatedTokensArePublishedToo() {
    KvCacheManager kv = new KvCacheManager(new PagePool(8), P, true);
    prefill(kv, 1, range(0, 3));
    assertTrue(kv.reserve(1, 1));
    kv.commit(1, new int[] {3}, 0, 1);  // the page is now full: 0 1 2 3
    kv.free(1);
    assertEquals(4, kv.admit(2, range(0, 6), 0));
  }
}
