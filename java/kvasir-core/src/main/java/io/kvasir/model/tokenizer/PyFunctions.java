package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.time.Clock;
import java.time.DayOfWeek;
import java.time.Month;
import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.List;
import java.util.Locale;

/**
 * The globals transformers gives chat templates: {@code raise_exception(message)} and
 * {@code strftime_now(format)} (Llama 3.2 writes "Today Date" with it). Jinjava calls them as
 * static EL functions; the per-render state they need (the clock, where to record a raised
 * message) sits in the render context under {@link #STATE}.
 */
final class PyFunctions {
  /** Context key of the {@link RenderState} of one render; not a name templates use. */
  static final String STATE = "__kvasir_render_state__";

  private PyFunctions() {}

  /** Per-render state: the clock strftime_now reads, and the message of raise_exception once called. */
  static final class RenderState {
    final Clock clock;
    volatile String raised;

    RenderState(Clock clock) {
      this.clock = clock;
    }
  }

  static List<ELFunctionDefinition> all() {
    return List.of(
        new ELFunctionDefinition("", "raise_exception", PyFunctions.class, "raiseException", Object.class),
        new ELFunctionDefinition("", "strftime_now", PyFunctions.class, "strftimeNow", String.class));
  }

  /**
   * Records the message and stops: Jinjava turns exceptions inside expressions into render
   * errors and carries on, so {@link ChatTemplate} looks at the recorded message after the
   * render and throws {@link ChatTemplateException} with it, as jinja2 would have raised.
   */
  public static Object raiseException(Object message) {
    String text = String.valueOf(message);
    RenderState state = state();
    if (state != null && state.raised == null) {
      state.raised = text;
    }
    throw new ChatTemplateException("raise_exception: " + text);
  }

  public static String strftimeNow(String format) {
    RenderState state = state();
    Clock clock = state == null ? Clock.systemDefaultZone() : state.clock;
    return strftime(ZonedDateTime.now(clock), format);
  }

  private static RenderState state() {
    JinjavaInterpreter interpreter = JinjavaInterpreter.getCurrent();
    return interpreter == null ? null : (RenderState) interpreter.getContext().get(STATE);
  }

  /** C-locale {@code strftime} for the directives Python documents as portable; others pass through. */
  static String strftime(ZonedDateTime t, String format) {
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < format.length(); i++) {
      char c = format.charAt(i);
      if (c != '%' || i + 1 == format.length()) {
        out.append(c);
        continue;
      }
      char d = format.charAt(++i);
      switch (d) {
        case 'a' -> out.append(day(t.getDayOfWeek(), TextStyle.SHORT));
        case 'A' -> out.append(day(t.getDayOfWeek(), TextStyle.FULL));
        case 'b', 'h' -> out.append(month(t.getMonth(), TextStyle.SHORT));
        case 'B' -> out.append(month(t.getMonth(), TextStyle.FULL));
        case 'd' -> out.append(two(t.getDayOfMonth()));
        case 'e' -> out.append(String.format("%2d", t.getDayOfMonth()));
        case 'm' -> out.append(two(t.getMonthValue()));
        case 'y' -> out.append(two(t.getYear() % 100));
        case 'Y' -> out.append(t.getYear());
        case 'H' -> out.append(two(t.getHour()));
        case 'I' -> out.append(two(t.getHour() % 12 == 0 ? 12 : t.getHour() % 12));
        case 'p' -> out.append(t.getHour() < 12 ? "AM" : "PM");
        case 'M' -> out.append(two(t.getMinute()));
        case 'S' -> out.append(two(t.getSecond()));
        case 'f' -> out.append(String.format("%06d", t.getNano() / 1000));
        case 'j' -> out.append(String.format("%03d", t.getDayOfYear()));
        case 'w' -> out.append(t.getDayOfWeek().getValue() % 7);
        case 'u' -> out.append(t.getDayOfWeek().getValue());
        case 'z' -> out.append(t.getOffset().getTotalSeconds() == 0 ? "+0000" : t.getOffset().getId().replace(":", ""));
        case 'Z' -> out.append(t.getZone().getDisplayName(TextStyle.SHORT, Locale.ROOT));
        case 'F' -> out.append(t.getYear()).append('-').append(two(t.getMonthValue())).append('-')
            .append(two(t.getDayOfMonth()));
        case 'T' -> out.append(two(t.getHour())).append(':').append(two(t.getMinute())).append(':')
            .append(two(t.getSecond()));
        case '%' -> out.append('%');
        default -> out.append('%').append(d);
      }
    }
    return out.toString();
  }

  private static String two(int v) {
    return v < 10 ? "0" + v : Integer.toString(v);
  }

  private static String day(DayOfWeek d, TextStyle style) {
    return d.getDisplayName(style, Locale.ENGLISH);
  }

  private static String month(Month m, TextStyle style) {
    return m.getDisplayName(style, Locale.ENGLISH);
  }
}
