package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * Jinja tests ({@code x is iterable}) whose Jinjava versions disagree with Python on strings:
 * in Python a string is iterable and a sequence, and Llama 3.2's template relies on it
 * ({@code message.content is mapping or message.content is iterable} sends a tool result through
 * {@code tojson}, quoting it). Each replaces Jinjava's test of the same name.
 */
final class PyTests {
  private PyTests() {}

  static List<ExpTest> all() {
    return List.of(new Iterable_(), new Sequence());
  }

  /** {@code iterable}: anything Python can iterate: strings, lists, dicts. */
  static final class Iterable_ implements ExpTest {
    @Override
    public String getName() {
      return "iterable";
    }

    @Override
    public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
      return var instanceof CharSequence || var instanceof Iterable<?> || var instanceof Map<?, ?>
          || (var != null && var.getClass().isArray());
    }
  }

  /** {@code sequence}: has a length and item access: strings, lists, dicts. */
  static final class Sequence implements ExpTest {
    @Override
    public String getName() {
      return "sequence";
    }

    @Override
    public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
      return var instanceof CharSequence || var instanceof Collection<?> || var instanceof Map<?, ?>
          || (var != null && var.getClass().isArray());
    }
  }
}
