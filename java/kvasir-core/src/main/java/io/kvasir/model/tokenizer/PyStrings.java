package io.kvasir.model.tokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * Python {@code str} semantics that chat templates rely on and Java lacks or differs in:
 * Python's whitespace set ({@code str.isspace}: includes U+00A0, U+3000, U+2000..U+200A, unlike
 * {@link String#trim()}), {@code strip(chars)}, {@code split()} with and without a separator,
 * and lengths and indices in code points rather than UTF-16 units.
 */
final class PyStrings {
  private PyStrings() {}

  /** Python's {@code str.isspace} for one code point (bidi types WS, B, S, or category Zs). */
  static boolean isSpace(int c) {
    return switch (c) {
      case '\t', '\n', 0x0B, '\f', '\r', 0x1C, 0x1D, 0x1E, 0x1F, ' ', 0x85, 0xA0, 0x1680, 0x2028,
          0x2029, 0x202F, 0x205F, 0x3000 -> true;
      default -> c >= 0x2000 && c <= 0x200A;
    };
  }

  private static boolean strips(int c, String chars) {
    return chars == null ? isSpace(c) : chars.indexOf(c) >= 0 || (Character.isSupplementaryCodePoint(c)
        && chars.contains(new String(Character.toChars(c))));
  }

  /** {@code s.strip(chars)}; {@code chars == null} strips whitespace. */
  static String strip(String s, String chars) {
    return rstrip(lstrip(s, chars), chars);
  }

  static String lstrip(String s, String chars) {
    int i = 0;
    while (i < s.length()) {
      int c = s.codePointAt(i);
      if (!strips(c, chars)) {
        break;
      }
      i += Character.charCount(c);
    }
    return s.substring(i);
  }

  static String rstrip(String s, String chars) {
    int end = s.length();
    while (end > 0) {
      int c = s.codePointBefore(end);
      if (!strips(c, chars)) {
        break;
      }
      end -= Character.charCount(c);
    }
    return s.substring(0, end);
  }

  /** {@code s.split(sep, maxsplit)}; {@code sep == null} splits on whitespace runs and drops empties. */
  static List<String> split(String s, String sep, int maxsplit) {
    List<String> out = new ArrayList<>();
    if (sep == null) {
      int i = 0;
      int n = s.length();
      while (true) {
        while (i < n && isSpace(s.codePointAt(i))) {
          i += Character.charCount(s.codePointAt(i));
        }
        if (i >= n) {
          return out;
        }
        if (maxsplit >= 0 && out.size() == maxsplit) {
          out.add(rstrip(s.substring(i), null));
          return out;
        }
        int start = i;
        while (i < n && !isSpace(s.codePointAt(i))) {
          i += Character.charCount(s.codePointAt(i));
        }
        out.add(s.substring(start, i));
      }
    }
    if (sep.isEmpty()) {
      throw new IllegalArgumentException("empty separator");
    }
    int from = 0;
    while (maxsplit < 0 || out.size() < maxsplit) {
      int at = s.indexOf(sep, from);
      if (at < 0) {
        break;
      }
      out.add(s.substring(from, at));
      from = at + sep.length();
    }
    out.add(s.substring(from));
    return out;
  }

  /** {@code s.rsplit(sep, maxsplit)} for an explicit separator (whitespace when null). */
  static List<String> rsplit(String s, String sep, int maxsplit) {
    if (maxsplit < 0) {
      return split(s, sep, -1);
    }
    if (sep == null) {
      List<String> reversed = split(new StringBuilder(s).reverse().toString(), null, maxsplit);
      List<String> out = new ArrayList<>();
      for (int i = reversed.size() - 1; i >= 0; i--) {
        out.add(new StringBuilder(reversed.get(i)).reverse().toString());
      }
      return out;
    }
    List<String> out = new ArrayList<>();
    int end = s.length();
    while (out.size() < maxsplit) {
      int at = s.lastIndexOf(sep, end - sep.length());
      if (at < 0) {
        break;
      }
      out.add(0, s.substring(at + sep.length(), end));
      end = at;
    }
    out.add(0, s.substring(0, end));
    return out;
  }

  /** {@code s.splitlines()}: no empty last element for a trailing line break, none at all for "". */
  static List<String> splitlines(String s) {
    List<String> out = new ArrayList<>();
    int start = 0;
    int i = 0;
    while (i < s.length()) {
      char c = s.charAt(i);
      boolean lineBreak = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E)
          || c == 0x85 || c == 0x2028 || c == 0x2029;
      if (lineBreak) {
        out.add(s.substring(start, i));
        i += c == '\r' && i + 1 < s.length() && s.charAt(i + 1) == '\n' ? 2 : 1;
        start = i;
      } else {
        i++;
      }
    }
    if (start < s.length()) {
      out.add(s.substring(start));
    }
    return out;
  }

  /** {@code s.replace(old, new, count)}; count < 0 replaces all. Empty {@code old} inserts between code points, as Python does. */
  static String replace(String s, String old, String replacement, int count) {
    if (old.isEmpty()) {
      StringBuilder b = new StringBuilder();
      int done = 0;
      int i = 0;
      while (i <= s.length()) {
        if (count < 0 || done < count) {
          b.append(replacement);
          done++;
        }
        if (i == s.length()) {
          break;
        }
        int c = s.codePointAt(i);
        b.appendCodePoint(c);
        i += Character.charCount(c);
      }
      return b.toString();
    }
    StringBuilder b = new StringBuilder();
    int from = 0;
    int done = 0;
    while (count < 0 || done < count) {
      int at = s.indexOf(old, from);
      if (at < 0) {
        break;
      }
      b.append(s, from, at).append(replacement);
      from = at + old.length();
      done++;
    }
    return b.append(s, from, s.length()).toString();
  }

  /** {@code len(s)}: code points, so an emoji counts once. */
  static int length(String s) {
    return s.codePointCount(0, s.length());
  }

  /** A UTF-16 index converted to a code-point index (for {@code find}); -1 stays -1. */
  static int codePointIndex(String s, int utf16Index) {
    return utf16Index < 0 ? -1 : s.codePointCount(0, utf16Index);
  }

  /** {@code str.title()}: upper-case the first cased letter of each run of letters, lower-case the rest. */
  static String title(String s) {
    StringBuilder b = new StringBuilder(s.length());
    boolean previousCased = false;
    for (int i = 0; i < s.length(); ) {
      int c = s.codePointAt(i);
      b.appendCodePoint(previousCased ? Character.toLowerCase(c) : Character.toTitleCase(c));
      previousCased = Character.isLetter(c);
      i += Character.charCount(c);
    }
    return b.toString();
  }

  /** {@code str.capitalize()}: first code point upper (title) case, the rest lower case. */
  static String capitalize(String s) {
    if (s.isEmpty()) {
      return s;
    }
    int first = s.codePointAt(0);
    return new StringBuilder().appendCodePoint(Character.toTitleCase(first))
        .append(s.substring(Character.charCount(first)).toLowerCase(java.util.Locale.ROOT)).toString();
  }
}
