package io.kvasir.cache;

import java.util.Arrays;

/**
 * What a full page's content is named by in the prefix cache: its parent page's key hash, its
 * tokens and extra keys (for example a LoRA or multimodal id; 0 when none). The 64-bit hash finds
 * candidates; equality compares the parent hash, the tokens and the extra key, so a hash
 * collision can never hand out another prefix's KV.
 */
public final class PrefixKey {
  /** The parent hash of a sequence's first page. */
  public static final long ROOT = 0x9e3779b97f4a7c15L;

  private final long parentHash;
  private final int[] tokens;
  private final long extra;
  private final long hash;

  private PrefixKey(long parentHash, int[] tokens, long extra) {
    this.parentHash = parentHash;
    this.tokens = tokens;
    this.extra = extra;
    this.hash = mix(parentHash, tokens, extra);
  }

  /** The key of {@code tokens[from, to)} following the page whose key hash is {@code parentHash}. */
  public static PrefixKey of(long parentHash, int[] tokens, int from, int to, long extra) {
    return new PrefixKey(parentHash, Arrays.copyOfRange(tokens, from, to), extra);
  }

  /** The hash chain's next link: what a following page passes as its parent hash. */
  public long hash() {
    return hash;
  }

  public int tokens() {
    return tokens.length;
  }

  // 64-bit mixing (splitmix64 finalizer over a running state): fast, well distributed.
  private static long mix(long parent, int[] tokens, long extra) {
    long h = parent ^ 0xd1b54a32d192ed03L;
    for (int t : tokens) {
      h = fmix(h + (t & 0xffffffffL) * 0x9e3779b97f4a7c15L);
    }
    return fmix(h ^ extra ^ ((long) tokens.length << 48));
  }

  private static long fmix(long z) {
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof PrefixKey k && k.hash == hash && k.parentHash == parentHash && k.extra == extra
        && Arrays.equals(k.tokens, tokens);
  }

  @Override
  public int hashCode() {
    return Long.hashCode(hash);
  }

  @Override
  public String toString() {
    return String.format("PrefixKey[%016x, %d tokens]", hash, tokens.length);
  }
}
