package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.AdvancedFilter;
import java.util.List;
import java.util.Map;

/**
 * Filters whose Jinjava versions differ from what chat templates get under transformers; each
 * replaces Jinjava's filter of the same name.
 */
final class PyFilters {
  private PyFilters() {}

  static List<AdvancedFilter> all() {
    return List.of(new ToJson(), new Trim(), new Length("length"), new Length("count"), new Str(), new Sort());
  }

  /**
   * {@code tojson(ensure_ascii=False, indent=None, separators=None, sort_keys=False)} as
   * transformers defines it: plain {@code json.dumps}. Jinjava's sorts keys and drops spaces.
   */
  static final class ToJson implements AdvancedFilter {
    @Override
    public String getName() {
      return "tojson";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
      Object ensureAscii = arg(args, kwargs, 0, "ensure_ascii");
      Object indent = arg(args, kwargs, 1, "indent");
      Object separators = arg(args, kwargs, 2, "separators");
      Object sortKeys = arg(args, kwargs, 3, "sort_keys");
      if (separators != null && !(separators instanceof List<?>)) {
        throw new IllegalArgumentException("tojson: separators must be a pair, found " + separators);
      }
      return new PyJson(Boolean.TRUE.equals(ensureAscii), indent, (List<?>) separators,
          Boolean.TRUE.equals(sortKeys)).dumps(var);
    }
  }

  /** {@code trim(chars=None)}: Python's {@code str.strip}, which also strips U+00A0, U+3000 and the like. */
  static final class Trim implements AdvancedFilter {
    @Override
    public String getName() {
      return "trim";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
      Object chars = arg(args, kwargs, 0, "chars");
      return PyStrings.strip(var == null ? "None" : var.toString(), chars == null ? null : chars.toString());
    }
  }

  /** {@code length} / {@code count}: a string's length in code points (Python's {@code len}). */
  static final class Length implements AdvancedFilter {
    private final String name;

    Length(String name) {
      this.name = name;
    }

    @Override
    public String getName() {
      return name;
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
      if (var == null) {
        return 0L;
      }
      if (var instanceof CharSequence s) {
        return (long) PyStrings.length(s.toString());
      }
      if (var instanceof java.util.Collection<?> c) {
        return (long) c.size();
      }
      if (var instanceof Map<?, ?> m) {
        return (long) m.size();
      }
      if (var instanceof Object[] a) {
        return (long) a.length;
      }
      if (var instanceof Iterable<?> it) {
        long n = 0;
        for (Object ignored : it) {
          n++;
        }
        return n;
      }
      throw new IllegalArgumentException("object of type " + var.getClass().getSimpleName() + " has no len()");
    }
  }

  /** {@code string}: Python's {@code str()}, so booleans are "True"/"False" (undefined/none give ""). */
  static final class Str implements AdvancedFilter {
    @Override
    public String getName() {
      return "string";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
      return var == null ? "" : PyRepr.str(var);
    }
  }

  /**
   * {@code sort(reverse=False, case_sensitive=False, attribute=None)} with jinja2's keyword
   * arguments (Jinjava's takes them positionally only) and its case-insensitive string order.
   */
  static final class Sort implements AdvancedFilter {
    @Override
    public String getName() {
      return "sort";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
      boolean reverse = Boolean.TRUE.equals(arg(args, kwargs, 0, "reverse"));
      boolean caseSensitive = Boolean.TRUE.equals(arg(args, kwargs, 1, "case_sensitive"));
      Object attribute = arg(args, kwargs, 2, "attribute");
      List<Object> items = new java.util.ArrayList<>();
      if (var instanceof Map<?, ?> m) {
        items.addAll(m.keySet());
      } else if (var instanceof Iterable<?> it) {
        it.forEach(items::add);
      } else if (var != null) {
        throw new IllegalArgumentException("sort: not a sequence: " + var);
      }
      java.util.Comparator<Object> order = (a, b) -> compare(key(a, attribute, caseSensitive, interpreter),
          key(b, attribute, caseSensitive, interpreter));
      items.sort(reverse ? order.reversed() : order); // stable, as Python's sorted
      return new com.hubspot.jinjava.objects.collections.PyList(items);
    }

    private static Object key(Object item, Object attribute, boolean caseSensitive, JinjavaInterpreter interpreter) {
      Object v = item;
      if (attribute != null) {
        for (String part : attribute.toString().split("\\.")) {
          v = v instanceof Map<?, ?> m ? m.get(part) : interpreter.resolveProperty(v, part);
        }
      }
      return !caseSensitive && v instanceof String s ? s.toLowerCase(java.util.Locale.ROOT) : v;
    }

    private static int compare(Object a, Object b) {
      if (a instanceof Number x && b instanceof Number y) {
        return Double.compare(x.doubleValue(), y.doubleValue());
      }
      if (a instanceof Boolean x && b instanceof Boolean y) {
        return Boolean.compare(x, y);
      }
      if (a == null || b == null) {
        throw new IllegalArgumentException("sort: cannot compare None");
      }
      return java.util.Arrays.compare(a.toString().codePoints().toArray(), b.toString().codePoints().toArray());
    }
  }

  private static Object arg(Object[] args, Map<String, Object> kwargs, int position, String name) {
    if (kwargs != null && kwargs.containsKey(name)) {
      return kwargs.get(name);
    }
    return args != null && position < args.length ? args[position] : null;
  }
}
