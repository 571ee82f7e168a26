package io.kvasir.model.tokenizer;

import java.util.Arrays;

/**
 * Turns generated token ids into text as they arrive, for streaming. One token may carry part
 * of a character (byte-level BPE splits an emoji or a CJK character over several tokens) and a
 * token's text may depend on the one before it (SentencePiece drops the leading space of the
 * first token of a decode), so a token's text is not {@code decode([id])}.
 *
 * <p>The method, as in Hugging Face text-generation-inference and vLLM: keep a short window of
 * already-emitted ids ({@code prefix..read}) as context, decode the window with and without the
 * new ids, and emit the difference, but only once the decoded text does not end in U+FFFD (the
 * decoder's replacement for an incomplete UTF-8 sequence); until then the bytes stay pending.
 * {@link #flush()} emits whatever is pending at the end, replacement characters included when
 * the ids really end mid-character. Invariant: the concatenation of everything emitted equals
 * {@code tokenizer.decode(allIds, skipSpecialTokens)} for byte-level tokenizers.
 *
 * <p>Not thread-safe: one instance per sequence.
 */
public final class Detokenizer {
  private static final char REPLACEMENT = '\uFFFD';
  // Ids of context kept before the first new id; enough for any decoder's look-behind.
  private static final int CONTEXT_IDS = 6;

  private final Tokenizer tokenizer;
  private final boolean skipSpecialTokens;
  private int[] ids;
  private int length;
  private int prefixOffset; // start of the context window
  private int readOffset; // ids before this have been emitted

  Detokenizer(Tokenizer tokenizer, int[] promptIds, boolean skipSpecialTokens) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = skipSpecialTokens;
    int context = Math.min(promptIds.length, CONTEXT_IDS);
    this.ids = Arrays.copyOfRange(promptIds, promptIds.length - context, promptIds.length + 16);
    this.length = context;
    this.prefixOffset = 0;
    this.readOffset = context;
  }

  /** Adds one generated id and returns the text that is now complete (often "", never null). */
  public String add(int id) {
    if (length == ids.length) {
      ids = Arrays.copyOf(ids, ids.length * 2);
    }
    ids[length++] = id;
    String prefixText = decode(prefixOffset, readOffset);
    String fullText = decode(prefixOffset, length);
    // Text grew and ends in a whole character: emit the new part and slide the window.
    if (fullText.length() > prefixText.length() && fullText.charAt(fullText.length() - 1) != REPLACEMENT) {
      prefixOffset = readOffset;
      readOffset = length;
      compact();
      return fullText.substring(prefixText.length());
    }
    return "";
  }

  /** Adds several ids; returns the text completed by them. */
  public String add(int... newIds) {
    StringBuilder out = new StringBuilder();
    for (int id : newIds) {
      out.append(add(id));
    }
    return out.toString();
  }

  /** Emits what is still pending (an incomplete character comes out as U+FFFD) and resets the window. */
  public String flush() {
    if (readOffset == length) {
      return "";
    }
    String prefixText = decode(prefixOffset, readOffset);
    String fullText = decode(prefixOffset, length);
    prefixOffset = readOffset;
    readOffset = length;
    compact();
    return fullText.length() > prefixText.length() ? fullText.substring(prefixText.length()) : "";
  }

  /** Ids added and not yet emitted as text. */
  public int pendingIds() {
    return length - readOffset;
  }

  private String decode(int from, int to) {
    return tokenizer.decode(Arrays.copyOfRange(ids, from, to), skipSpecialTokens);
  }

  /** Drops ids before the window so memory stays bounded however long the generation. */
  private void compact() {
    if (prefixOffset > 0) {
      System.arraycopy(ids, prefixOffset, ids, 0, length - prefixOffset);
      length -= prefixOffset;
      readOffset -= prefixOffset;
      prefixOffset = 0;
    }
  }
}
