package io.kvasir.bench.tasks;

/**
 * A tokenizer-free estimate: {@code ceil(UTF-8 bytes / 4)}, about what byte-level BPE
 * vocabularies of 128k-150k tokens give on English prose. For streams whose consumer applies its
 * own tokenizer and only needs lengths in the right range.
 */
public final class ApproxTokenCounter implements TokenCounter {
  public static final ApproxTokenCounter INSTANCE = new ApproxTokenCounter();

  private ApproxTokenCounter() {}

  @Override
  public int count(String text) {
    return (int) ((utf8Bytes(text) + 3) / 4);
  }

  /** UTF-8 length without encoding (surrogate pairs are 4 bytes; a lone surrogate is written as '?', 1 byte). */
  static long utf8Bytes(CharSequence s) {
    long n = 0;
    for (int i = 0, len = s.length(); i < len; ++i) {
      char c = s.charAt(i);
      if (c < 0x80) {
        n += 1;
      } else if (c < 0x800) {
        n += 2;
      } else if (Character.isHighSurrogate(c) && i + 1 < len && Character.isLowSurrogate(s.charAt(i + 1))) {
        n += 4;
        ++i;
      } else if (Character.isSurrogate(c)) {
        n += 1;
      } else {
        n += 3;
      }
    }
    return n;
  }

  @Override
  public String toString() {
    return "approximate (UTF-8 bytes / 4)";
  }
}
