package io.kvasir.server;

import java.util.Locale;

/** Prometheus text exposition format 0.0.4: {@code # HELP}, {@code # TYPE}, then samples. */
final class PrometheusText {
  static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

  private final StringBuilder text = new StringBuilder();

  void header(String name, String type, String help) {
    text.append("# HELP ").append(name).append(' ').append(help.replace("\\", "\\\\").replace("\n", "\\n"))
        .append('\n');
    text.append("# TYPE ").append(name).append(' ').append(type).append('\n');
  }

  /** One sample; {@code labels} is the inside of the braces ({@code tier="device"}) or null. */
  void sample(String name, String labels, double value) {
    text.append(name);
    if (labels != null && !labels.isEmpty()) {
      text.append('{').append(labels).append('}');
    }
    text.append(' ').append(number(value)).append('\n');
  }

  static String label(String key, String value) {
    return key + "=\"" + value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
  }

  static String number(double v) {
    if (Double.isNaN(v)) {
      return "NaN";
    }
    if (Double.isInfinite(v)) {
      return v > 0 ? "+Inf" : "-Inf";
    }
    if (v == Math.rint(v) && Math.abs(v) < 1e15) {
      return Long.toString((long) v);
    }
    return String.format(Locale.ROOT, "%s", v);
  }

  @Override
  public String toString() {
    return text.toString();
  }
}
