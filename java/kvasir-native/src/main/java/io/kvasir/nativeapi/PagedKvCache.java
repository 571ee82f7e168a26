package io.kvasir.nativeapi;

import java.util.Objects;
import org.bytedeco.javacpp.Pointer;

/**
 * The paged KV cache of a {@link Model} ({@code kv_paged_cache_init}): {@code pages} pages of
 * {@code pageTokens} tokens for every layer, in Kvasir's head-major page layout, with per-page key
 * summaries when asked (Quest). Which pages a sequence owns is decided on the Java side
 * ({@code io.kvasir.cache.KvCacheManager}); every step names them.
 */
public final class PagedKvCache extends NativeHandle {
  private final Model model;
  private final int pages;
  private final int pageTokens;
  private final boolean keySummaries;

  private PagedKvCache(KvasirLibrary.kv_kv_cache handle, Model model, int pages, int pageTokens, boolean summaries) {
    super(handle, "PagedKvCache(" + pages + " pages x " + pageTokens + " tokens)");
    this.model = model;
    this.pages = pages;
    this.pageTokens = pageTokens;
    this.keySummaries = summaries;
  }

  /** Allocates {@code pages} pages of {@code pageTokens} tokens, with key summaries when {@code keySummaries}. */
  public static PagedKvCache create(Model model, int pages, int pageTokens, boolean keySummaries) {
    Objects.requireNonNull(model, "model");
    KvasirLibrary.kv_kv_cache out = new KvasirLibrary.kv_kv_cache();
    KvasirException.check(KvasirLibrary.kv_paged_cache_init(model.nativeHandle(), pages, pageTokens,
        keySummaries ? 1 : 0, out));
    return new PagedKvCache(out, model, pages, pageTokens, keySummaries);
  }

  @Override
  void free(Pointer handle) {
    KvasirLibrary.kv_kv_cache_free((KvasirLibrary.kv_kv_cache) handle);
  }

  KvasirLibrary.kv_kv_cache nativeHandle() {
    return (KvasirLibrary.kv_kv_cache) handle();
  }

  /** Copies whole pages, {@code dst[i] <- src[i]} (copy-on-write before a shared page is written). */
  public void copyPages(int[] src, int[] dst) {
    if (src.length != dst.length) {
      throw new IllegalArgumentException("copyPages: " + src.length + " sources for " + dst.length + " destinations");
    }
    KvasirException.check(KvasirLibrary.kv_paged_cache_copy_pages(nativeHandle(), src, dst, src.length));
  }

  public Model model() {
    return model;
  }

  public int pages() {
    return pages;
  }

  public int pageTokens() {
    return pageTokens;
  }

  public boolean keySummaries() {
    return keySummaries;
  }

  /** Bytes of K, V and key summaries together. */
  public long bytes() {
    return KvasirLibrary.kv_kv_cache_bytes(nativeHandle());
  }
}
