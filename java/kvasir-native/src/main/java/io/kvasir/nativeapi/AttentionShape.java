package io.kvasir.nativeapi;

/**
 * Shape of one single-query (decode) attention call over contiguous K/V:
 * <pre>
 *   q   [batch][numQHeads][headDim]
 *   k,v [batch][kvLen][numKvHeads][headDim]
 *   o   [batch][numQHeads][headDim]
 *   lse [batch][numQHeads]            fp32, natural log
 * </pre>
 * Query head h reads KV head {@code h / (numQHeads / numKvHeads)}. The library decides which
 * shapes it supports (head_dim 64, 128 or 256; numQHeads a multiple of numKvHeads) and says why
 * it refuses one; this record only rejects negative sizes, for which no element count exists.
 */
public record AttentionShape(int batch, int numQHeads, int numKvHeads, int headDim, long kvLen) {
  public AttentionShape {
    Checks.nonNegative("batch", batch);
    Checks.nonNegative("numQHeads", numQHeads);
    Checks.nonNegative("numKvHeads", numKvHeads);
    Checks.nonNegative("headDim", headDim);
    Checks.nonNegative("kvLen", kvLen);
  }

  /** Query heads per KV head (the GQA group size); 0 when the shape is not a valid GQA shape. */
  public int groupSize() {
    return numKvHeads > 0 && numQHeads % numKvHeads == 0 ? numQHeads / numKvHeads : 0;
  }

  /** Elements of q and of o. */
  public long queryElements() {
    return Checks.elements("q", batch, numQHeads, headDim);
  }

  /** Elements of k and of v each. */
  public long kvElements() {
    return Checks.elements("k", batch, kvLen, numKvHeads, headDim);
  }

  /** Elements of lse (one state per query head). */
  public long lseElements() {
    return Checks.elements("lse", batch, numQHeads);
  }

  /** {@code 1 / sqrt(headDim)}, the usual softmax scale. */
  public float defaultScale() {
    return (float) (1.0 / Math.sqrt(headDim));
  }
}
