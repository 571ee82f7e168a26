package io.kvasir.policy;

import java.util.Locale;

/**
 * A component parameter: its name, kind and allowed range.
 *
 * @param name        as written in specs ({@code k_tokens})
 * @param kind        integer, real number or boolean
 * @param min         smallest allowed value (numbers)
 * @param max         largest allowed value (numbers)
 * @param description one line for error messages and help
 */
public record ParamSpec(String name, Kind kind, double min, double max, String description) {
  /** What a parameter's value is. */
  public enum Kind { INT, REAL, BOOL }

  public static ParamSpec integer(String name, long min, long max, String description) {
    return new ParamSpec(name, Kind.INT, min, max, description);
  }

  public static ParamSpec real(String name, double min, double max, String description) {
    return new ParamSpec(name, Kind.REAL, min, max, description);
  }

  public static ParamSpec bool(String name, String description) {
    return new ParamSpec(name, Kind.BOOL, 0, 1, description);
  }

  /**
   * The value of {@code text}: a Long, Double or Boolean.
   *
   * @throws PolicySpecException naming the component, the parameter, the value and what is allowed
   */
  Object parse(String component, String text) {
    String where = component + ":" + name + "=" + text;
    switch (kind) {
      case BOOL -> {
        String t = text.toLowerCase(Locale.ROOT);
        if (t.equals("true") || t.equals("on") || t.equals("1")) {
          return Boolean.TRUE;
        }
        if (t.equals("false") || t.equals("off") || t.equals("0")) {
          return Boolean.FALSE;
        }
        throw new PolicySpecException(where + ": " + name + " is true or false");
      }
      case INT -> {
        long v;
        try {
          v = Long.parseLong(text);
        } catch (NumberFormatException e) {
          throw new PolicySpecException(where + ": " + name + " is an integer in " + range());
        }
        if (v < min || v > max) {
          throw new PolicySpecException(where + ": " + name + " must be in " + range());
        }
        return v;
      }
      default -> {
        double v;
        try {
          v = Double.parseDouble(text);
        } catch (NumberFormatException e) {
          throw new PolicySpecException(where + ": " + name + " is a number in " + range());
        }
        if (!(v >= min && v <= max)) {
          throw new PolicySpecException(where + ": " + name + " must be in " + range());
        }
        return v;
      }
    }
  }

  /** The allowed range as text ({@code [1, 1048576]}). */
  public String range() {
    return kind == Kind.INT ? "[" + (long) min + ", " + (long) max + "]" : "[" + min + ", " + max + "]";
  }

  @Override
  public String toString() {
    return name + " (" + kind.name().toLowerCase(Locale.ROOT) + (kind == Kind.BOOL ? "" : " in " + range()) + "): "
        + description;
  }
}
