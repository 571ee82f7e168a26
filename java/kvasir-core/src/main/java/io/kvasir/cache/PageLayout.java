package io.kvasir.cache;

/**
 * The shape of one page of a dense (all heads of all layers) page table: {@code pageTokens}
 * tokens of K and V for every layer and KV head, {@code elementBytes} per element (2 for bf16, 4
 * for an fp32 model). Quantized formats (Kitty, KIVI) and per-head tables (FlexiCache) add their
 * own layouts; budgets convert to pages through {@link #bytesPerPage()} alone, so they share this
 * arithmetic.
 *
 * @param pageTokens   tokens per page (16 by default)
 * @param layers       transformer layers
 * @param kvHeads      KV heads per layer
 * @param headDim      channels per head
 * @param elementBytes bytes of one K or V element
 */
public record PageLayout(int pageTokens, int layers, int kvHeads, int headDim, int elementBytes) {
  /** bf16: two bytes per element. */
  public static final int BF16_BYTES = 2;
  /** The default page size in tokens. */
  public static final int DEFAULT_PAGE_TOKENS = 16;

  /** A bf16 layout. */
  public PageLayout(int pageTokens, int layers, int kvHeads, int headDim) {
    this(pageTokens, layers, kvHeads, headDim, BF16_BYTES);
  }

  public PageLayout {
    if (elementBytes != 2 && elementBytes != 4) {
      throw new IllegalArgumentException("page elements are 2 (bf16) or 4 (fp32) bytes, not " + elementBytes);
    }
    if (pageTokens < 1 || layers < 1 || kvHeads < 1 || headDim < 1) {
      throw new IllegalArgumentException("page layout needs positive sizes: " + pageTokens + " tokens, " + layers
          + " layers, " + kvHeads + " KV heads, head size " + headDim);
    }
  }

  /** K and V of one token over all layers and KV heads. */
  public long bytesPerToken() {
    return 2L * layers * kvHeads * headDim * elementBytes;
  }

  public long bytesPerPage() {
    return bytesPerToken() * pageTokens;
  }

  /** Pages that {@code tokens} tokens of one sequence occupy (the last one partly filled). */
  public long pagesForTokens(long tokens) {
    return (tokens + pageTokens - 1) / pageTokens;
  }
}
