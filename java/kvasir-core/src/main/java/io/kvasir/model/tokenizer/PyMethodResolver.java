package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.objects.collections.PyList;
import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Python methods on strings and dicts for Jinjava expressions: {@code message.content.startswith(...)},
 * {@code .strip('\n')}, {@code .split('</think>')[-1]}, {@code tool.get('name', '')} and the rest
 * of what chat templates call. Jinjava resolves methods as Java bean methods, so
 * {@code startswith} (Java: {@code startsWith}) and {@code strip(chars)} are not found without
 * this resolver, which sits first in the resolver chain (see {@link PyJinjava}); it resolves only
 * the names it knows and leaves everything else to Jinjava's own resolvers.
 *
 * <p>Also indexing a string by position ({@code s[0]}, {@code s[-1]}) in code points.
 */
final class PyMethodResolver extends ELResolver {
  private static final Object UNHANDLED = new Object();

  @Override
  public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
    if (!(method instanceof String name)) {
      return null;
    }
    Object[] args = params == null ? new Object[0] : params;
    Object result = UNHANDLED;
    if (base instanceof String s) {
      result = stringMethod(s, name, args);
    } else if (base instanceof Map<?, ?> m) {
      result = mapMethod(m, name, args);
    }
    if (result == UNHANDLED) {
      return null;
    }
    context.setPropertyResolved(true);
    return result;
  }

  @Override
  public Object getValue(ELContext context, Object base, Object property) {
    // Jinjava hands indices over as text ("0", "-1").
    Long index = property instanceof Number n && !(property instanceof Double) ? Long.valueOf(n.longValue())
        : property instanceof String p && p.matches("-?[0-9]+") ? Long.valueOf(p) : null;
    if (base instanceof String s && index != null) {
      int length = PyStrings.length(s);
      long i = index < 0 ? index + length : index;
      if (i < 0 || i >= length) {
        throw new IndexOutOfBoundsException("string index " + index + " out of range for length " + length);
      }
      int at = s.offsetByCodePoints(0, (int) i);
      context.setPropertyResolved(true);
      return new String(Character.toChars(s.codePointAt(at)));
    }
    return null;
  }

  private static Object stringMethod(String s, String name, Object[] a) {
    return switch (name) {
      case "startswith" -> anyAffix(s, a, true);
      case "endswith" -> anyAffix(s, a, false);
      case "strip" -> PyStrings.strip(s, optString(a, 0));
      case "lstrip" -> PyStrings.lstrip(s, optString(a, 0));
      case "rstrip" -> PyStrings.rstrip(s, optString(a, 0));
      case "split" -> new PyList(new ArrayList<>(PyStrings.split(s, optString(a, 0), optInt(a, 1, -1))));
      case "rsplit" -> new PyList(new ArrayList<>(PyStrings.rsplit(s, optString(a, 0), optInt(a, 1, -1))));
      case "splitlines" -> new PyList(new ArrayList<>(PyStrings.splitlines(s)));
      case "replace" -> PyStrings.replace(s, str(a, 0), str(a, 1), optInt(a, 2, -1));
      case "upper" -> s.toUpperCase(Locale.ROOT);
      case "lower" -> s.toLowerCase(Locale.ROOT);
      case "title" -> PyStrings.title(s);
      case "capitalize" -> PyStrings.capitalize(s);
      case "find" -> (long) PyStrings.codePointIndex(s, s.indexOf(str(a, 0)));
      case "rfind" -> (long) PyStrings.codePointIndex(s, s.lastIndexOf(str(a, 0)));
      case "count" -> (long) count(s, str(a, 0));
      case "join" -> join(s, a);
      case "removeprefix" -> s.startsWith(str(a, 0)) ? s.substring(str(a, 0).length()) : s;
      case "removesuffix" -> !str(a, 0).isEmpty() && s.endsWith(str(a, 0))
          ? s.substring(0, s.length() - str(a, 0).length()) : s;
      case "isspace" -> !s.isEmpty() && s.codePoints().allMatch(PyStrings::isSpace);
      case "isdigit" -> !s.isEmpty() && s.codePoints().allMatch(Character::isDigit);
      case "isalpha" -> !s.isEmpty() && s.codePoints().allMatch(Character::isLetter);
      case "isalnum" -> !s.isEmpty() && s.codePoints().allMatch(Character::isLetterOrDigit);
      case "islower" -> s.codePoints().anyMatch(Character::isLowerCase) && s.equals(s.toLowerCase(Locale.ROOT));
      case "isupper" -> s.codePoints().anyMatch(Character::isUpperCase) && s.equals(s.toUpperCase(Locale.ROOT));
      default -> UNHANDLED;
    };
  }

  private static Object mapMethod(Map<?, ?> m, String name, Object[] a) {
    return switch (name) {
      // Java's Map.get takes one argument; Python's dict.get takes an optional default.
      case "get" -> a.length == 2 ? (m.containsKey(a[0]) ? m.get(a[0]) : a[1]) : UNHANDLED;
      default -> UNHANDLED;
    };
  }

  /** startswith/endswith take a string or a tuple (list) of strings. */
  private static boolean anyAffix(String s, Object[] a, boolean prefix) {
    Object arg = a.length > 0 ? a[0] : null;
    if (arg instanceof Collection<?> options) {
      for (Object o : options) {
        if (prefix ? s.startsWith(String.valueOf(o)) : s.endsWith(String.valueOf(o))) {
          return true;
        }
      }
      return false;
    }
    String affix = str(a, 0);
    return prefix ? s.startsWith(affix) : s.endsWith(affix);
  }

  private static int count(String s, String sub) {
    if (sub.isEmpty()) {
      return PyStrings.length(s) + 1;
    }
    int n = 0;
    for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) {
      n++;
    }
    return n;
  }

  private static String join(String sep, Object[] a) {
    if (a.length == 0 || !(a[0] instanceof Iterable<?> items)) {
      throw new IllegalArgumentException("join() expects an iterable of strings");
    }
    StringBuilder b = new StringBuilder();
    Iterator<?> it = items.iterator();
    while (it.hasNext()) {
      b.append(it.next());
      if (it.hasNext()) {
        b.append(sep);
      }
    }
    return b.toString();
  }

  private static String str(Object[] a, int i) {
    if (i >= a.length || a[i] == null) {
      throw new IllegalArgumentException("missing string argument " + (i + 1));
    }
    return String.valueOf(a[i]);
  }

  private static String optString(Object[] a, int i) {
    return i < a.length && a[i] != null ? String.valueOf(a[i]) : null;
  }

  private static int optInt(Object[] a, int i, int absent) {
    return i < a.length && a[i] instanceof Number n ? n.intValue() : absent;
  }

  @Override
  public Class<?> getType(ELContext context, Object base, Object property) {
    return null;
  }

  @Override
  public void setValue(ELContext context, Object base, Object property, Object value) {}

  @Override
  public boolean isReadOnly(ELContext context, Object base, Object property) {
    return false;
  }

  @Override
  public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
    return null;
  }

  @Override
  public Class<?> getCommonPropertyType(ELContext context, Object base) {
    return null;
  }
}
