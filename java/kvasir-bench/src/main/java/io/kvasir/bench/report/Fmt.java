package io.kvasir.bench.report;

import java.util.Locale;

/** Number formatting for tables: precision by magnitude, so that columns read at a glance. */
final class Fmt {
  static final String NONE = "—";

  private Fmt() {}

  /**
   * Integers as integers; otherwise 0 decimals from 100 up, 1 from 10, 2 from 1, and 3
   * significant digits below 1. NaN and null print as a dash.
   */
  static String num(Double v) {
    if (v == null || v.isNaN()) {
      return NONE;
    }
    double a = Math.abs(v);
    if (v == Math.rint(v) && a < 1e15) {
      return Long.toString((long) (double) v);
    }
    if (a >= 100) {
      return String.format(Locale.ROOT, "%.0f", v);
    }
    if (a >= 10) {
      return String.format(Locale.ROOT, "%.1f", v);
    }
    if (a >= 1) {
      return String.format(Locale.ROOT, "%.2f", v);
    }
    if (a >= 1e-3) {
      return String.format(Locale.ROOT, "%.3g", v);
    }
    return String.format(Locale.ROOT, "%.2e", v);
  }

  /** {@code value / baseline} as {@code 1.24x}; null when the baseline is zero or missing. */
  static String ratio(Double value, Double baseline) {
    if (value == null || baseline == null || baseline == 0 || value.isNaN() || baseline.isNaN()) {
      return null;
    }
    return String.format(Locale.ROOT, "%.2fx", value / baseline);
  }

  /** A signed difference with 3 decimals ({@code +0.042}, {@code -0.125}). */
  static String diff(double value, double baseline) {
    return String.format(Locale.ROOT, "%+.3f", value - baseline);
  }

  /** A fraction as a percentage with one decimal ({@code 0.3685} is {@code 36.8%}). */
  static String percent(Double fraction) {
    if (fraction == null || fraction.isNaN()) {
      return NONE;
    }
    return String.format(Locale.ROOT, "%.1f%%", 100 * fraction);
  }

  /** The first 12 characters of a commit hash. */
  static String commit(String c) {
    return c == null ? NONE : c.length() > 12 ? c.substring(0, 12) : c;
  }
}
