package io.kvasir.cache;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A KV-cache memory budget as users give it: in bytes ({@code 24GiB}, {@code 512MB},
 * {@code 1073741824}) or in tokens ({@code 131072tokens}, {@code 128Ktok}), never in pages: a
 * page's size depends on the policy's format and page size, which the user should not have to
 * know. {@link #pages(PageLayout)} converts.
 *
 * @param amount the number of bytes or tokens
 * @param tokens whether {@code amount} counts tokens (else bytes)
 */
public record KvBudget(long amount, boolean tokens) {
  private static final Pattern SYNTAX =
      Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*([kmgt]i?)?\\s*(b|bytes?|tok|tokens?)?", Pattern.CASE_INSENSITIVE);

  public KvBudget {
    if (amount < 1) {
      throw new IllegalArgumentException("a KV budget must be positive, not " + amount);
    }
  }

  public static KvBudget ofBytes(long bytes) {
    return new KvBudget(bytes, false);
  }

  public static KvBudget ofTokens(long tokens) {
    return new KvBudget(tokens, true);
  }

  /**
   * Parses {@code 24GiB}, {@code 1.5GB}, {@code 4096MiB}, {@code 131072tokens}, {@code 128Ktok},
   * {@code 65536} (bytes). K/M/G/T are powers of 1000, Ki/Mi/Gi/Ti powers of 1024.
   *
   * @throws IllegalArgumentException naming the text and the accepted forms
   */
  public static KvBudget parse(String text) {
    Matcher m = SYNTAX.matcher(text == null ? "" : text.strip());
    if (!m.matches()) {
      throw new IllegalArgumentException("KV budget \"" + text + "\": write bytes (24GiB, 512MB, 1073741824) or"
          + " tokens (131072tokens, 128Ktok)");
    }
    double number = Double.parseDouble(m.group(1));
    String prefix = m.group(2) == null ? "" : m.group(2).toLowerCase(Locale.ROOT);
    double scale = switch (prefix) {
      case "" -> 1;
      case "k" -> 1e3;
      case "m" -> 1e6;
      case "g" -> 1e9;
      case "t" -> 1e12;
      case "ki" -> 1L << 10;
      case "mi" -> 1L << 20;
      case "gi" -> 1L << 30;
      default -> 1L << 40;  // ti
    };
    boolean isTokens = m.group(3) != null && m.group(3).toLowerCase(Locale.ROOT).startsWith("tok");
    double amount = number * scale;
    if (amount < 1 || amount > Long.MAX_VALUE / 2) {
      throw new IllegalArgumentException("KV budget \"" + text + "\" is out of range (at least 1, at most 2^62)");
    }
    return new KvBudget(Math.round(Math.floor(amount)), isTokens);
  }

  /**
   * Whole pages the budget holds: bytes divided by the page size (rounded down), or tokens in
   * pages (rounded up, as a sequence of that many tokens needs).
   *
   * @throws IllegalArgumentException when not even one page fits, naming both sizes
   */
  public long pages(PageLayout layout) {
    long pages = tokens ? layout.pagesForTokens(amount) : amount / layout.bytesPerPage();
    if (pages < 1) {
      throw new IllegalArgumentException("KV budget " + this + " holds no page of " + layout.bytesPerPage()
          + " bytes (" + layout.pageTokens() + " tokens x " + layout.bytesPerToken() + " bytes)");
    }
    return pages;
  }

  /** The bytes the budget's pages take. */
  public long bytes(PageLayout layout) {
    return pages(layout) * layout.bytesPerPage();
  }

  @Override
  public String toString() {
    return amount + (tokens ? " tokens" : " bytes");
  }
}
