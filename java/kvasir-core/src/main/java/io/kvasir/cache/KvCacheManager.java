package io.kvasir.cache;

import io.kvasir.policy.spi.PolicyCounters;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The page tables of every live sequence over one {@link PagePool}: admission with prefix
 * sharing, slot reservation with copy-on-write, publication of full pages to the prefix cache,
 * forks ({@code n > 1} samples share their prompt's pages) and release.
 *
 * <p>A sequence's life: {@link #admit} shares the cached pages of its prompt's longest cached
 * prefix and reports how many tokens need no prefill; before each step the scheduler
 * {@link #reserve reserves} room for the step's new tokens (all or nothing), asks for their
 * {@link #slots}, and after the step {@link #commit commits} the tokens whose K and V the step
 * wrote, which publishes pages that became full. {@link #free} returns the pages (full published
 * ones stay in the prefix cache until their slot is needed).
 *
 * <p>Copy-on-write: a page referenced by more than one holder is never written. When a
 * sequence's next token would land in a shared, partly filled page (after a fork), reserve
 * allocates a private page and queues a {@link PageCopy}; the engine must run the copies
 * ({@link #drainCopies}) before the step that writes. Full pages are never written again, so a
 * prefix hit never copies.
 *
 * <p>Not thread-safe: the engine's scheduler thread owns it.
 */
public final class KvCacheManager {
  /** Page {@code src}'s content goes to page {@code dst} before the next step writes {@code dst}. */
  public record PageCopy(int src, int dst) {}

  private static final class Sequence {
    int[] pages = new int[4];
    int numPages;
    int kvLen;               // tokens whose K and V are written (committed)
    int[] tokens = new int[16];  // the committed tokens, for prefix keys
    int published;           // leading full pages already named in the prefix cache (or skipped)
    long chainHash = PrefixKey.ROOT;
    final long extraKey;

    Sequence(long extraKey) {
      this.extraKey = extraKey;
    }

    void addPage(int p) {
      if (numPages == pages.length) {
        pages = Arrays.copyOf(pages, pages.length * 2);
      }
      pages[numPages++] = p;
    }

    void addTokens(int[] t, int from, int count) {
      if (kvLen + count > tokens.length) {
        tokens = Arrays.copyOf(tokens, Math.max(tokens.length * 2, kvLen + count));
      }
      System.arraycopy(t, from, tokens, kvLen, count);
      kvLen += count;
    }
  }

  private final PagePool pool;
  private final int pageTokens;
  private final boolean prefixCaching;
  private final Map<Long, Sequence> sequences = new HashMap<>();
  private final List<PageCopy> copies = new ArrayList<>();
  private long prefixTokensQueried;
  private long prefixTokensHit;
  private long pagesCopied;

  /**
   * @param pool          the page slots (one per page of {@code pageTokens} tokens, all layers)
   * @param pageTokens    tokens per page
   * @param prefixCaching whether full pages are shared across sequences by content
   */
  public KvCacheManager(PagePool pool, int pageTokens, boolean prefixCaching) {
    if (pageTokens < 1) {
      throw new IllegalArgumentException("pageTokens=" + pageTokens + " must be >= 1");
    }
    this.pool = pool;
    this.pageTokens = pageTokens;
    this.prefixCaching = prefixCaching;
  }

  public PagePool pool() {
    return pool;
  }

  public int pageTokens() {
    return pageTokens;
  }

  public boolean prefixCaching() {
    return prefixCaching;
  }

  public int liveSequences() {
    return sequences.size();
  }

  public boolean contains(long seqId) {
    return sequences.containsKey(seqId);
  }

  /** Prompt tokens looked up in the prefix cache so far (whole pages only). */
  public long prefixTokensQueried() {
    return prefixTokensQueried;
  }

  /** Prompt tokens whose K and V came from the prefix cache. */
  public long prefixTokensHit() {
    return prefixTokensHit;
  }

  /** Copy-on-write copies queued so far. */
  public long pagesCopied() {
    return pagesCopied;
  }

  /**
   * The manager's counters so far, by the names of {@link PolicyCounters#MANAGER}:
   * prefix tokens queried and hit, prefix pages evicted (the pool's), pages copied on write.
   */
  public Map<String, Long> counters() {
    Map<String, Long> out = new LinkedHashMap<>();
    out.put(PolicyCounters.PREFIX_TOKENS_QUERIED, prefixTokensQueried);
    out.put(PolicyCounters.PREFIX_TOKENS_HIT, prefixTokensHit);
    out.put(PolicyCounters.PREFIX_PAGES_EVICTED, pool.evictions());
    out.put(PolicyCounters.PAGES_COPIED, pagesCopied);
    return out;
  }

  /**
   * Starts a sequence. With prefix caching, the cached pages of the prompt's longest cached
   * prefix become its first pages; the last prompt token is always left to compute (its logits
   * are needed), so at most {@code (prompt.length - 1) / P} pages are taken.
   *
   * @param extraKey what else the KV depends on (a LoRA id, a cache salt; 0 when nothing)
   * @return tokens of the prompt whose K and V are already cached (a multiple of the page size)
   */
  public int admit(long seqId, int[] prompt, long extraKey) {
    if (sequences.containsKey(seqId)) {
      throw new IllegalStateException("sequence " + seqId + " is already admitted");
    }
    if (prompt.length == 0) {
      throw new IllegalArgumentException("sequence " + seqId + ": an empty prompt has nothing to attend to");
    }
    Sequence s = new Sequence(extraKey);
    if (prefixCaching) {
      int maxPages = (prompt.length - 1) / pageTokens;
      prefixTokensQueried += (long) maxPages * pageTokens;
      for (int i = 0; i < maxPages; ++i) {
        PrefixKey key = PrefixKey.of(s.chainHash, prompt, i * pageTokens, (i + 1) * pageTokens, extraKey);
        int page = pool.lookup(key);
        if (page < 0) {
          break;
        }
        s.addPage(page);
        s.addTokens(prompt, i * pageTokens, pageTokens);
        s.chainHash = key.hash();
        s.published = i + 1;
      }
      prefixTokensHit += s.kvLen;
    }
    sequences.put(seqId, s);
    return s.kvLen;
  }

  /**
   * Forgets every cached prefix (pages in use keep their contents; free pages lose their keys), so
   * the next request computes its prompt from scratch: a benchmark's workloads start cold.
   */
  public void clearPrefixCache() {
    pool.clearPrefixCache();
  }

  /** Tokens of the sequence whose K and V are written. */
  public int kvLen(long seqId) {
    return get(seqId).kvLen;
  }

  /** Pages in the sequence's table (the last may be partly filled or reserved ahead). */
  public int numPages(long seqId) {
    return get(seqId).numPages;
  }

  /** The sequence's page table: physical page of logical page j at index j. */
  public int[] pageTable(long seqId) {
    Sequence s = get(seqId);
    return Arrays.copyOf(s.pages, s.numPages);
  }

  /** Copies the page table into {@code out} at {@code offset}; returns the number of pages. */
  public int pageTable(long seqId, int[] out, int offset) {
    Sequence s = get(seqId);
    System.arraycopy(s.pages, 0, out, offset, s.numPages);
    return s.numPages;
  }

  /** Free pages {@link #reserve} would take to make room for {@code newTokens} more tokens. */
  public int pagesNeeded(long seqId, int newTokens) {
    return pagesNeeded(get(seqId), newTokens);
  }

  private int pagesNeeded(Sequence s, int newTokens) {
    if (newTokens < 0) {
      throw new IllegalArgumentException("newTokens=" + newTokens + " must be >= 0");
    }
    int end = s.kvLen + newTokens;
    int need = Math.max(0, ceilDiv(end, pageTokens) - s.numPages);
    if (newTokens > 0 && needsCopy(s)) {
      ++need;
    }
    return need;
  }

  // The next token lands in a partly filled page that another holder also references.
  private boolean needsCopy(Sequence s) {
    int offset = s.kvLen % pageTokens;
    int page = s.kvLen / pageTokens;
    return offset != 0 && page < s.numPages && pool.isShared(s.pages[page]);
  }

  /**
   * Makes room for positions {@code [kvLen, kvLen + newTokens)}: allocates pages and makes a
   * shared partly filled page private. All or nothing.
   *
   * @return false, changing nothing, when the pool has too few free pages
   */
  public boolean reserve(long seqId, int newTokens) {
    Sequence s = get(seqId);
    int need = pagesNeeded(s, newTokens);
    if (need > pool.freePages()) {
      return false;
    }
    if (newTokens > 0 && needsCopy(s)) {
      int index = s.kvLen / pageTokens;
      int shared = s.pages[index];
      int own = pool.allocate();
      copies.add(new PageCopy(shared, own));
      ++pagesCopied;
      pool.release(shared);
      s.pages[index] = own;
    }
    int end = s.kvLen + newTokens;
    while (s.numPages * (long) pageTokens < end) {
      s.addPage(pool.allocate());
    }
    return true;
  }

  /**
   * Physical slots ({@code page * P + row}) of positions {@code [from, from + count)}, which must
   * be reserved, into {@code out[offset..]}.
   */
  public void slots(long seqId, int from, int count, long[] out, int offset) {
    Sequence s = get(seqId);
    if (from < 0 || count < 0 || (long) from + count > (long) s.numPages * pageTokens) {
      throw new IllegalArgumentException("sequence " + seqId + ": positions [" + from + ", " + (from + count)
          + ") are not reserved (" + s.numPages + " pages of " + pageTokens + ")");
    }
    for (int i = 0; i < count; ++i) {
      int pos = from + i;
      out[offset + i] = (long) s.pages[pos / pageTokens] * pageTokens + pos % pageTokens;
    }
  }

  /**
   * Records that the step wrote K and V of {@code tokens[from, from + count)} at positions
   * {@code [kvLen, kvLen + count)}; pages that became full are published to the prefix cache.
   */
  public void commit(long seqId, int[] tokens, int from, int count) {
    Sequence s = get(seqId);
    if ((long) s.kvLen + count > (long) s.numPages * pageTokens) {
      throw new IllegalStateException("sequence " + seqId + ": committing " + count + " tokens after " + s.kvLen
          + " overflows its " + s.numPages + " reserved pages");
    }
    s.addTokens(tokens, from, count);
    int full = s.kvLen / pageTokens;
    for (int i = s.published; i < full; ++i) {
      if (prefixCaching) {
        PrefixKey key = PrefixKey.of(s.chainHash, s.tokens, i * pageTokens, (i + 1) * pageTokens, s.extraKey);
        pool.publish(s.pages[i], key);
        s.chainHash = key.hash();
      }
    }
    s.published = Math.max(s.published, full);
  }

  /**
   * A new sequence sharing every page of {@code parent} (an {@code n > 1} sample): the first
   * write of either into their shared partly filled page copies it.
   */
  public void fork(long parentId, long childId) {
    Sequence p = get(parentId);
    if (sequences.containsKey(childId)) {
      throw new IllegalStateException("sequence " + childId + " is already admitted");
    }
    Sequence c = new Sequence(p.extraKey);
    for (int i = 0; i < p.numPages; ++i) {
      pool.retain(p.pages[i]);
      c.addPage(p.pages[i]);
    }
    c.addTokens(p.tokens, 0, p.kvLen);
    c.published = p.published;
    c.chainHash = p.chainHash;
    sequences.put(childId, c);
  }

  /**
   * Forgets the K and V of positions {@code newLen} and up, which the sequence will compute
   * again (a fork's sample recomputing the prompt's last token with its own sampling). Pages
   * wholly past the cut are released; a page the cut falls inside is kept and copied on the next
   * write if shared, unless it is published in the prefix cache, which is never written: then
   * the cut moves back to that page's first row and the page is released too.
   *
   * @return the tokens kept ({@code newLen}, or less when the cut moved back)
   */
  public int truncate(long seqId, int newLen) {
    Sequence s = get(seqId);
    if (newLen < 0 || newLen > s.kvLen) {
      throw new IllegalArgumentException("sequence " + seqId + ": cannot truncate " + s.kvLen + " tokens to " + newLen);
    }
    if (newLen % pageTokens != 0 && newLen / pageTokens < s.published) {
      newLen -= newLen % pageTokens;
    }
    int keep = (newLen + pageTokens - 1) / pageTokens;
    while (s.numPages > keep) {
      pool.release(s.pages[--s.numPages]);
    }
    s.kvLen = newLen;
    int published = Math.min(s.published, newLen / pageTokens);
    if (published < s.published && prefixCaching) {
      // The chain hash names the last published page: roll it back with the cut, so the pages
      // written again are published under their own position's key (not one page further on).
      long h = PrefixKey.ROOT;
      for (int i = 0; i < published; ++i) {
        h = PrefixKey.of(h, s.tokens, i * pageTokens, (i + 1) * pageTokens, s.extraKey).hash();
      }
      s.chainHash = h;
    }
    s.published = published;
    return newLen;
  }

  /**
   * Ends a sequence: its pages lose one reference, deepest first (so the deepest, least shared
   * pages are the first a later allocation evicts from the prefix cache).
   */
  public void free(long seqId) {
    Sequence s = sequences.remove(seqId);
    if (s == null) {
      throw new IllegalStateException("sequence " + seqId + " is not admitted (freed twice?)");
    }
    for (int i = s.numPages - 1; i >= 0; --i) {
      pool.release(s.pages[i]);
    }
  }

  /** The copies queued by {@link #reserve} since the last call, in order; the queue is emptied. */
  public List<PageCopy> drainCopies() {
    List<PageCopy> out = List.copyOf(copies);
    copies.clear();
    return out;
  }

  private Sequence get(long seqId) {
    Sequence s = sequences.get(seqId);
    if (s == null) {
      throw new IllegalStateException("sequence " + seqId + " is not admitted");
    }
    return s;
  }

  private static int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
  }
}
