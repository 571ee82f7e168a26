package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.expression.ExpressionStrategy;
import com.hubspot.jinjava.objects.SafeString;
import com.hubspot.jinjava.tree.output.RenderedOutputNode;
import com.hubspot.jinjava.tree.parse.ExpressionToken;
import java.util.Iterator;
import java.util.Map;

/**
 * Values as Python prints them: {@code {{ flag }}} is "True", a list is "['a', None]". Jinjava
 * prints Java's "true" and "null"; templates that print a boolean or a tool's arguments dict
 * would then differ from transformers. Installed as Jinjava's expression output strategy.
 *
 * <p>One difference stays: Jinjava has no undefined value distinct from none, so a top-level
 * {@code {{ none }}} prints "" (jinja2's rendering of an undefined variable, by far the more
 * common case in templates) where jinja2 prints "None". Inside containers none is "None".
 */
final class PyRepr implements ExpressionStrategy {
  private static final long serialVersionUID = 1L;

  @Override
  public RenderedOutputNode interpretOutput(ExpressionToken master, JinjavaInterpreter interpreter) {
    Object value = interpreter.resolveELExpression(master.getExpr(), master.getLineNumber());
    return new RenderedOutputNode(value == null ? "" : str(value));
  }

  /** Python's {@code str(value)}. */
  static String str(Object v) {
    if (v == null) {
      return "None";
    }
    if (v instanceof CharSequence || v instanceof SafeString) {
      return v.toString();
    }
    return repr(v);
  }

  /** Python's {@code repr(value)} for the types templates see. */
  static String repr(Object v) {
    if (v == null) {
      return "None";
    }
    if (v instanceof Boolean b) {
      return b ? "True" : "False";
    }
    if (v instanceof SafeString s) {
      return quote(s.toString());
    }
    if (v instanceof CharSequence s) {
      return quote(s.toString());
    }
    if (v instanceof Double || v instanceof Float) {
      return PyJson.floatRepr(((Number) v).doubleValue()).replace("Infinity", "inf").replace("NaN", "nan");
    }
    if (v instanceof Number n) {
      return n.toString();
    }
    if (v instanceof Map<?, ?> map) {
      StringBuilder b = new StringBuilder("{");
      Iterator<? extends Map.Entry<?, ?>> it = map.entrySet().iterator();
      while (it.hasNext()) {
        Map.Entry<?, ?> e = it.next();
        b.append(repr(e.getKey())).append(": ").append(repr(e.getValue()));
        if (it.hasNext()) {
          b.append(", ");
        }
      }
      return b.append('}').toString();
    }
    if (v instanceof Iterable<?> items) {
      StringBuilder b = new StringBuilder("[");
      Iterator<?> it = items.iterator();
      while (it.hasNext()) {
        b.append(repr(it.next()));
        if (it.hasNext()) {
          b.append(", ");
        }
      }
      return b.append(']').toString();
    }
    return v.toString();
  }

  /** Python's string repr: single quotes unless the text has a single quote and no double quote. */
  private static String quote(String s) {
    char q = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
    StringBuilder b = new StringBuilder().append(q);
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c == q) {
            b.append('\\').append(c);
          } else if (c < 0x20 || c == 0x7F) {
            b.append(String.format("\\x%02x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append(q).toString();
  }
}
