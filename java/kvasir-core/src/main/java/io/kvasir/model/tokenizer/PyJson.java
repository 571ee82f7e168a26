package io.kvasir.model.tokenizer;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Python's {@code json.dumps}, byte for byte, for the {@code tojson} filter of chat templates.
 * Transformers replaces Jinja's own {@code tojson} (which escapes HTML characters and sorts keys)
 * by {@code json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
 * sort_keys=sort_keys)}, and tool schemas reach the model text through it, so separators
 * ({@code ", "} and {@code ": "}, or {@code ","} with an indent), key order (insertion order),
 * escapes and float formatting ({@code repr}) must all match.
 */
final class PyJson {
  private final boolean ensureAscii;
  private final String indent; // null: single line
  private final String itemSeparator;
  private final String keySeparator;
  private final boolean sortKeys;

  /**
   * @param indent null, a number of spaces, or a string, as json.dumps takes it
   * @param separators null, or a two-element list (item separator, key separator)
   */
  PyJson(boolean ensureAscii, Object indent, List<?> separators, boolean sortKeys) {
    this.ensureAscii = ensureAscii;
    if (indent == null) {
      this.indent = null;
    } else if (indent instanceof Number n) {
      this.indent = " ".repeat(Math.max(0, n.intValue()));
    } else {
      this.indent = indent.toString();
    }
    if (separators != null) {
      if (separators.size() != 2) {
        throw new IllegalArgumentException("separators must be a pair, found " + separators);
      }
      this.itemSeparator = String.valueOf(separators.get(0));
      this.keySeparator = String.valueOf(separators.get(1));
    } else {
      this.itemSeparator = this.indent == null ? ", " : ",";
      this.keySeparator = ": ";
    }
    this.sortKeys = sortKeys;
  }

  String dumps(Object value) {
    StringBuilder out = new StringBuilder();
    write(out, value, 0);
    return out.toString();
  }

  private void write(StringBuilder out, Object v, int depth) {
    if (v == null) {
      out.append("null");
    } else if (v instanceof Boolean b) {
      out.append(b ? "true" : "false");
    } else if (v instanceof CharSequence s) {
      string(out, s.toString());
    } else if (v instanceof Double || v instanceof Float || v instanceof BigDecimal) {
      out.append(floatRepr(((Number) v).doubleValue()));
    } else if (v instanceof Number n) {
      out.append(n instanceof BigInteger ? n.toString() : Long.toString(n.longValue()));
    } else if (v instanceof Map<?, ?> map) {
      object(out, map, depth);
    } else if (v instanceof Iterable<?> items) {
      array(out, items.iterator(), depth);
    } else if (v instanceof Object[] items) {
      array(out, List.of(items).iterator(), depth);
    } else {
      throw new IllegalArgumentException("Object of type " + v.getClass().getSimpleName()
          + " is not JSON serializable");
    }
  }

  private void object(StringBuilder out, Map<?, ?> map, int depth) {
    if (map.isEmpty()) {
      out.append("{}");
      return;
    }
    List<Map.Entry<String, Object>> entries = new ArrayList<>();
    for (Map.Entry<?, ?> e : map.entrySet()) {
      entries.add(Map.entry(key(e.getKey()), e.getValue() == null ? NULL : e.getValue()));
    }
    if (sortKeys) {
      entries.sort(Map.Entry.comparingByKey(PyJson::compareCodePoints));
    }
    out.append('{');
    for (int i = 0; i < entries.size(); i++) {
      out.append(i == 0 ? "" : itemSeparator);
      newline(out, depth + 1);
      string(out, entries.get(i).getKey());
      out.append(keySeparator);
      Object value = entries.get(i).getValue();
      write(out, value == NULL ? null : value, depth + 1);
    }
    newline(out, depth);
    out.append('}');
  }

  private static final Object NULL = new Object(); // Map.entry refuses null values

  private void array(StringBuilder out, Iterator<?> items, int depth) {
    if (!items.hasNext()) {
      out.append("[]");
      return;
    }
    out.append('[');
    boolean first = true;
    while (items.hasNext()) {
      out.append(first ? "" : itemSeparator);
      first = false;
      newline(out, depth + 1);
      write(out, items.next(), depth + 1);
    }
    newline(out, depth);
    out.append(']');
  }

  private void newline(StringBuilder out, int depth) {
    if (indent != null) {
      out.append('\n').append(indent.repeat(depth));
    }
  }

  /** Keys as json.dumps converts them: strings stay, numbers and booleans become their JSON text. */
  private String key(Object k) {
    if (k instanceof String s) {
      return s;
    }
    if (k == null) {
      return "null";
    }
    if (k instanceof Boolean || k instanceof Number) {
      StringBuilder b = new StringBuilder();
      write(b, k, 0);
      return b.toString();
    }
    throw new IllegalArgumentException("keys must be str, int, float, bool or None, not "
        + k.getClass().getSimpleName());
  }

  private static int compareCodePoints(String a, String b) {
    return java.util.Arrays.compare(a.codePoints().toArray(), b.codePoints().toArray());
  }

  private void string(StringBuilder out, String s) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        case '\b' -> out.append("\\b");
        case '\f' -> out.append("\\f");
        default -> {
          if (c < 0x20 || (ensureAscii && c > 0x7F)) {
            out.append(String.format("\\u%04x", (int) c)); // surrogates come out as pairs, as in Python
          } else {
            out.append(c);
          }
        }
      }
    }
    out.append('"');
  }

  /** Python's {@code repr(float)}: shortest round-trip digits, exponent form below 1e-4 or from 1e16. */
  static String floatRepr(double d) {
    if (Double.isNaN(d)) {
      return "NaN";
    }
    if (Double.isInfinite(d)) {
      return d > 0 ? "Infinity" : "-Infinity";
    }
    if (d == 0) {
      return (1 / d < 0) ? "-0.0" : "0.0";
    }
    BigDecimal exact = new BigDecimal(Double.toString(d)).stripTrailingZeros();
    String digits = exact.unscaledValue().abs().toString();
    int exponent = digits.length() - 1 - exact.scale(); // of the first digit
    String sign = d < 0 ? "-" : "";
    if (exponent < -4 || exponent >= 16) {
      String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
      return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + String.format("%02d", Math.abs(exponent));
    }
    String plain = exact.abs().toPlainString();
    return sign + (plain.contains(".") ? plain : plain + ".0");
  }
}
