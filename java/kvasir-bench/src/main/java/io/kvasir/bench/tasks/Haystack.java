package io.kvasir.bench.tasks;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.regex.Pattern;

/**
 * The filler prose of the haystack tasks: a UTF-8 text file, one paragraph per line (blank lines
 * ignored), split into sentences after {@code . ! ? ; :}. A haystack is a run of consecutive
 * sentences from any start, wrapping from the end of the file to its beginning, joined by single
 * spaces, with a newline where a paragraph begins.
 *
 * <p>Immutable and thread-safe; the tokens each sentence adds are cached per counter, so
 * building a prompt of any length sums cached counts and needs a single exact count of the whole.
 */
public final class Haystack {
  /** Sentence boundaries: whitespace after sentence-ending punctuation. */
  public static final Pattern SENTENCE_BREAK = Pattern.compile("(?<=[.!?;:])\\s+");

  private final Path file;
  private final String[] sentences;
  private final boolean[] paragraphStart;
  private final Map<TokenCounter, AtomicIntegerArray> unitTokens = new ConcurrentHashMap<>();

  private Haystack(Path file, String[] sentences, boolean[] paragraphStart) {
    this.file = file;
    this.sentences = sentences;
    this.paragraphStart = paragraphStart;
  }

  /**
   * Reads and splits a haystack file.
   *
   * @throws IllegalArgumentException naming the file when it is missing, unreadable or holds no text
   */
  public static Haystack load(Path file) {
    List<String> lines;
    try {
      lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException("haystack file " + file + " does not exist", e);
    } catch (IOException e) {
      throw new IllegalArgumentException("haystack file " + file + " cannot be read as UTF-8 text: " + e.getMessage(), e);
    } catch (UncheckedIOException e) {
      throw new IllegalArgumentException("haystack file " + file + " cannot be read: " + e.getMessage(), e);
    }
    List<String> out = new ArrayList<>();
    List<Boolean> starts = new ArrayList<>();
    for (String line : lines) {
      String paragraph = line.strip();
      if (paragraph.isEmpty()) {
        continue;
      }
      boolean first = true;
      for (String s : SENTENCE_BREAK.split(paragraph)) {
        if (!s.isEmpty()) {
          out.add(s);
          starts.add(first);
          first = false;
        }
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("haystack file " + file + " is empty: it needs one paragraph of prose per line");
    }
    boolean[] flags = new boolean[starts.size()];
    for (int i = 0; i < flags.length; ++i) flags[i] = starts.get(i);
    return new Haystack(file, out.toArray(String[]::new), flags);
  }

  public Path file() {
    return file;
  }

  /** Sentences in the file. */
  public int size() {
    return sentences.length;
  }

  /** Sentence {@code i} modulo the file's sentence count. */
  public String sentence(int i) {
    return sentences[Math.floorMod(i, sentences.length)];
  }

  /** The separator before sentence {@code i} inside a haystack: a newline where a paragraph begins. */
  public String separatorBefore(int i) {
    return paragraphStart[Math.floorMod(i, sentences.length)] ? "\n" : " ";
  }

  /**
   * Tokens sentence {@code i} adds after sentence {@code i - 1}, with its separator, cached per
   * counter: {@code count(tail + separator + sentence) - count(tail)}, where the tail is the last
   * word of the sentence before. The context catches merges across the break (".\n" is one token
   * in byte-level BPE vocabularies), so the sum over a run of sentences is within a token or so
   * of the run's exact count.
   */
  public int unitTokens(TokenCounter counter, int i) {
    int index = Math.floorMod(i, sentences.length);
    AtomicIntegerArray cache = unitTokens.computeIfAbsent(counter, c -> new AtomicIntegerArray(sentences.length));
    int cached = cache.get(index);
    if (cached == 0) {
      String before = sentence(index - 1);
      String tail = before.substring(before.lastIndexOf(' ') + 1);
      int tokens = counter.count(tail + separatorBefore(index) + sentences[index]) - counter.count(tail);
      // At least one token, so a run of sentences always grows. Stored plus one: 0 means not
      // counted yet. Two threads may count the same unit; both store the same value.
      cached = Math.max(1, tokens) + 1;
      cache.set(index, cached);
    }
    return cached - 1;
  }

  /**
   * Appends {@code n} sentences from {@code start} (wrapping) with inserts placed between them:
   * {@code inserts[k]} goes before the sentence at offset {@code positions[k]} in [0, n] (n: after
   * the last); positions are ascending and equal positions keep the inserts' order. Inserts are
   * separated from their neighbours by a space, sentences as in the file (space or newline).
   */
  public void append(StringBuilder out, int start, int n, int[] positions, String[] inserts) {
    int k = 0;
    boolean first = true;
    for (int j = 0; j <= n; ++j) {
      while (k < positions.length && positions[k] == j) {
        if (!first) {
          out.append(' ');
        }
        out.append(inserts[k++]);
        first = false;
      }
      if (j < n) {
        if (!first) {
          out.append(separatorBefore(start + j));
        }
        out.append(sentence(start + j));
        first = false;
      }
    }
    if (k != positions.length) {
      throw new IllegalArgumentException("insert positions must be ascending within [0, " + n + "]");
    }
  }

  @Override
  public String toString() {
    return "Haystack[" + file + ", " + sentences.length + " sentences]";
  }
}
