package io.kvasir.cache;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Page slots of one tier with reference counts and a prefix cache, every operation O(1).
 *
 * <p>A page is <em>used</em> while its reference count is above zero; at zero it goes to the tail
 * of the free list. A free page keeps its prefix key, so a later request with the same prefix
 * takes it back ({@link #lookup}) until {@link #allocate} needs the slot. Allocation takes the
 * head of the free list, the least recently freed page, and drops its key then (an eviction from
 * the prefix cache). Callers free a sequence's pages last page first, so its deepest pages, the
 * least likely to be shared, go first. A page shared by several holders ({@link #isShared}) must
 * be copied before it is written (copy-on-write is the caller's move: allocate, copy, release).
 *
 * <p>Not thread-safe: the engine's scheduler thread owns it.
 */
public final class PagePool {
  private final int pages;
  private final int[] refCount;
  private final int[] prev;  // free-list links; index `pages` is the sentinel
  private final int[] next;
  private final boolean[] free;
  private final PrefixKey[] key;
  private final Map<PrefixKey, Integer> cached = new HashMap<>();
  private int freeCount;
  private long queries;
  private long hits;
  private long evictions;

  /** A pool of {@code pages} slots, all free. */
  public PagePool(int pages) {
    if (pages < 1) {
      throw new IllegalArgumentException("a page pool needs at least 1 page, not " + pages);
    }
    this.pages = pages;
    this.refCount = new int[pages];
    this.prev = new int[pages + 1];
    this.next = new int[pages + 1];
    this.free = new boolean[pages];
    this.key = new PrefixKey[pages];
    prev[pages] = next[pages] = pages;
    for (int p = 0; p < pages; ++p) {
      append(p);
    }
  }

  public int capacity() {
    return pages;
  }

  /** Pages that {@link #allocate} can hand out now (free ones, cached or not). */
  public int freePages() {
    return freeCount;
  }

  public int usedPages() {
    return pages - freeCount;
  }

  /** Pages holding a prefix key (used or free). */
  public int cachedPages() {
    return cached.size();
  }

  /** Prefix-cache lookups so far. */
  public long queries() {
    return queries;
  }

  /** Lookups that found the page. */
  public long hits() {
    return hits;
  }

  /** Free cached pages whose slot was taken for a new page. */
  public long evictions() {
    return evictions;
  }

  public int refCount(int page) {
    check(page);
    return refCount[page];
  }

  /** Whether more than one holder references the page: writing it needs a private copy first. */
  public boolean isShared(int page) {
    check(page);
    return refCount[page] > 1;
  }

  /**
   * A fresh page with one reference: the least recently freed one, its prefix key dropped.
   *
   * @throws IllegalStateException when no page is free (check {@link #freePages()} first)
   */
  public int allocate() {
    if (freeCount == 0) {
      throw new IllegalStateException("no free page among " + pages + ": preempt a sequence or check freePages()");
    }
    int p = next[pages];
    unlink(p);
    if (key[p] != null) {
      cached.remove(key[p]);
      key[p] = null;
      ++evictions;
    }
    refCount[p] = 1;
    return p;
  }

  /**
   * The cached page holding {@code k}, with one more reference; -1 when none does.
   */
  public int lookup(PrefixKey k) {
    ++queries;
    Integer p = cached.get(k);
    if (p == null) {
      return -1;
    }
    ++hits;
    if (free[p]) {
      unlink(p);
    }
    ++refCount[p];
    return p;
  }

  /**
   * Names a full, used page by its prefix key so later requests can share it. A key already held
   * by another page is left there (this page stays private); a page is named once.
   *
   * @throws IllegalStateException when the page is free or already named
   */
  public void publish(int page, PrefixKey k) {
    check(page);
    if (refCount[page] == 0) {
      throw new IllegalStateException("page " + page + " is free: only a used page can be published");
    }
    if (key[page] != null) {
      throw new IllegalStateException("page " + page + " is already published as " + key[page]);
    }
    if (cached.putIfAbsent(k, page) == null) {
      key[page] = k;
    }
  }

  /** One more reference to a used page (an n > 1 sample sharing its prompt pages). */
  public void retain(int page) {
    check(page);
    if (refCount[page] == 0) {
      throw new IllegalStateException("page " + page + " is free: look it up or allocate it instead");
    }
    ++refCount[page];
  }

  /**
   * Drops one reference; at zero the page goes to the tail of the free list, keeping its prefix key.
   *
   * @throws IllegalStateException when the page has no reference (a double free)
   */
  public void release(int page) {
    check(page);
    if (refCount[page] == 0) {
      throw new IllegalStateException("page " + page + " released with no reference left (double free)");
    }
    if (--refCount[page] == 0) {
      append(page);
    }
  }

  /** Forgets every prefix key (the cache's contents are invalid, e.g. after the weights changed). */
  public void clearPrefixCache() {
    cached.clear();
    Arrays.fill(key, null);
  }

  private void check(int page) {
    if (page < 0 || page >= pages) {
      throw new IndexOutOfBoundsException("page " + page + " is outside the pool [0, " + pages + ")");
    }
  }

  private void append(int p) {
    int tail = prev[pages];
    next[tail] = p;
    prev[p] = tail;
    next[p] = pages;
    prev[pages] = p;
    free[p] = true;
    ++freeCount;
  }

  private void unlink(int p) {
    next[prev[p]] = next[p];
    prev[next[p]] = prev[p];
    free[p] = false;
    --freeCount;
  }
}
