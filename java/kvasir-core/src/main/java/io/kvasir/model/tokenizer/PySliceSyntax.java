package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.el.ExtendedSyntaxBuilder;
import com.hubspot.jinjava.el.ext.AstNamedParameter;
import com.hubspot.jinjava.el.ext.ExtendedParser;
import com.hubspot.jinjava.objects.collections.PyList;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.impl.Builder;
import jinjava.de.odysseus.el.tree.impl.Parser;
import jinjava.de.odysseus.el.tree.impl.Scanner;
import jinjava.de.odysseus.el.tree.impl.Scanner.Symbol;
import jinjava.de.odysseus.el.tree.impl.ast.AstDot;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstRightValue;
import jinjava.de.odysseus.el.tree.impl.ast.AstUnary;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELException;

/**
 * Python expression syntax in Jinjava: slicing, the precedence of {@code not}, keyword arguments.
 *
 * <p>Slicing: Jinjava parses {@code x[a:b]} but not a step
 * ({@code messages[::-1]}, which Qwen3's template uses to walk the conversation backwards), and
 * its {@code [a:b]} counts strings in UTF-16 units. This syntax extension plugs into Jinjava's
 * expression parser (a {@link Builder} creates the {@link Parser}; {@link PyJinjava} installs it)
 * and parses every postfix {@code [...]} and {@code .name} itself, building Jinjava's own nodes
 * for plain indexing and member access and a {@link Slice} node, with Python's
 * {@code slice.indices} semantics, for anything with a colon.
 */
final class PySliceSyntax {
  private PySliceSyntax() {}

  /** Jinjava's syntax builder with {@link PyParser}; the features are those Jinjava's default factory enables. */
  static final class PyBuilder extends ExtendedSyntaxBuilder {
    private static final long serialVersionUID = 1L;

    PyBuilder() {
      super(Builder.Feature.METHOD_INVOCATIONS, Builder.Feature.VARARGS);
    }

    @Override
    protected Parser createParser(String expression) {
      return new PyParser(this, expression);
    }
  }

  /**
   * Jinjava's parser with Python postfix parsing. Jinjava's {@code value()} parses a primary
   * ({@code nonliteral()} or {@code literal()}) and then its postfix operators; overriding the
   * two primary methods to consume the postfix operators first leaves Jinjava's loop nothing to
   * do but its operator handling (filters, tests), which stays Jinjava's.
   */
  static final class PyParser extends ExtendedParser {
    PyParser(Builder context, String input) {
      super(context, input);
    }

    /**
     * {@code not} binds looser than comparisons and tests, as in Python: {@code not x|length == 1}
     * is {@code not (x|length == 1)}. JUEL's unary {@code not} would negate the length and
     * compare a boolean with 1 (Llama 3.2's template has exactly that line).
     */
    @Override
    protected AstNode eq(boolean required) throws Scanner.ScanException, ParseException {
      if (getToken().getSymbol() == Symbol.NOT) {
        consumeToken();
        return createAstUnary(eq(true), AstUnary.NOT);
      }
      return super.eq(required);
    }

    /**
     * A keyword argument {@code name=value} takes a whole expression as its value, as in Python:
     * Jinjava's "=" operator sits at the additive level, so {@code namespace(i=messages|length - 1)}
     * would subtract 1 from the parameter instead of from the length.
     */
    @Override
    protected AstNode add(boolean required) throws Scanner.ScanException, ParseException {
      if (getToken().getSymbol() == Symbol.IDENTIFIER && lookahead(0).getSymbol() == Symbol.EXTENSION
          && "=".equals(lookahead(0).getImage())) {
        String name = consumeToken().getImage();
        consumeToken(); // '='
        return new AstNamedParameter(identifier(name), expr(true));
      }
      return super.add(required);
    }

    @Override
    protected AstNode nonliteral() throws Scanner.ScanException, ParseException {
      AstNode v = super.nonliteral();
      return v == null ? null : postfix(v, true);
    }

    @Override
    protected AstNode literal() throws Scanner.ScanException, ParseException {
      AstNode v = super.literal();
      return v == null ? null : postfix(v, false);
    }

    private AstNode postfix(AstNode base, boolean lvalue) throws Scanner.ScanException, ParseException {
      AstNode v = base;
      while (true) {
        switch (getToken().getSymbol()) {
          case DOT -> {
            consumeToken();
            String name = consumeToken(Symbol.IDENTIFIER).getImage();
            AstDot dot = createAstDot(v, name, lvalue);
            v = getToken().getSymbol() == Symbol.LPAREN && context.isEnabled(Builder.Feature.METHOD_INVOCATIONS)
                ? createAstMethod(dot, params()) : dot;
          }
          case LBRACK -> {
            consumeToken();
            AstNode start = expr(false);
            if (getToken().getSymbol() == Symbol.RBRACK) {
              consumeToken();
              if (start == null) {
                fail("an index or a slice");
              }
              var bracket = createAstBracket(v, start, lvalue, !context.isEnabled(Builder.Feature.NULL_PROPERTIES));
              v = getToken().getSymbol() == Symbol.LPAREN && context.isEnabled(Builder.Feature.METHOD_INVOCATIONS)
                  ? createAstMethod(bracket, params()) : bracket;
            } else {
              consumeToken(Symbol.COLON);
              AstNode stop = expr(false);
              AstNode step = null;
              if (getToken().getSymbol() == Symbol.COLON) {
                consumeToken();
                step = expr(false);
              }
              consumeToken(Symbol.RBRACK);
              v = new Slice(v, start, stop, step);
            }
          }
          default -> {
            return v;
          }
        }
      }
    }
  }

  /** {@code base[start:stop:step]} on a string (code points) or a sequence; each bound may be omitted or none. */
  static final class Slice extends AstRightValue {
    private final AstNode base;
    private final AstNode start;
    private final AstNode stop;
    private final AstNode step;

    Slice(AstNode base, AstNode start, AstNode stop, AstNode step) {
      this.base = base;
      this.start = start;
      this.stop = stop;
      this.step = step;
    }

    @Override
    public Object eval(Bindings bindings, ELContext context) {
      Object value = base.eval(bindings, context);
      if (value == null) {
        throw new ELException("cannot slice none (" + base + ")");
      }
      Long stepValue = bound(step, bindings, context);
      long by = stepValue == null ? 1 : stepValue;
      if (by == 0) {
        throw new ELException("slice step cannot be zero");
      }
      if (value instanceof String s) {
        int[] cps = s.codePoints().toArray();
        StringBuilder out = new StringBuilder();
        for (int i : indices(cps.length, bindings, context, by)) {
          out.appendCodePoint(cps[i]);
        }
        return out.toString();
      }
      List<Object> items = new ArrayList<>();
      if (value instanceof Iterable<?> it) {
        it.forEach(items::add);
      } else if (value instanceof Object[] array) {
        items.addAll(Arrays.asList(array));
      } else {
        throw new ELException(base + " is not a sequence: cannot slice " + value.getClass().getSimpleName());
      }
      List<Object> out = new ArrayList<>();
      for (int i : indices(items.size(), bindings, context, by)) {
        out.add(items.get(i));
      }
      return new PyList(out);
    }

    /** The positions a slice selects in a sequence of {@code length}, as Python's slice.indices does. */
    private int[] indices(int length, Bindings bindings, ELContext context, long by) {
      Long lo = bound(start, bindings, context);
      Long hi = bound(stop, bindings, context);
      long first;
      long last;
      if (by > 0) {
        first = lo == null ? 0 : clamp(lo, length, 0, length);
        last = hi == null ? length : clamp(hi, length, 0, length);
      } else {
        first = lo == null ? length - 1 : clamp(lo, length, -1, length - 1);
        last = hi == null ? -1 : clamp(hi, length, -1, length - 1);
      }
      List<Integer> out = new ArrayList<>();
      for (long i = first; by > 0 ? i < last : i > last; i += by) {
        out.add((int) i);
      }
      return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private static long clamp(long index, int length, long min, long max) {
      long i = index < 0 ? index + length : index;
      return Math.max(min, Math.min(max, i));
    }

    private static Long bound(AstNode node, Bindings bindings, ELContext context) {
      if (node == null) {
        return null;
      }
      Object v = node.eval(bindings, context);
      if (v == null) {
        return null;
      }
      if (!(v instanceof Number n) || v instanceof Double || v instanceof Float) {
        throw new ELException("slice indices must be integers or none, found " + v);
      }
      return n.longValue();
    }

    @Override
    public void appendStructure(StringBuilder b, Bindings bindings) {
      base.appendStructure(b, bindings);
      b.append('[');
      appendBound(b, start, bindings);
      b.append(':');
      appendBound(b, stop, bindings);
      if (step != null) {
        b.append(':');
        step.appendStructure(b, bindings);
      }
      b.append(']');
    }

    private static void appendBound(StringBuilder b, AstNode node, Bindings bindings) {
      if (node != null) {
        node.appendStructure(b, bindings);
      }
    }

    @Override
    public int getCardinality() {
      return 4;
    }

    @Override
    public AstNode getChild(int i) {
      return switch (i) {
        case 0 -> base;
        case 1 -> start;
        case 2 -> stop;
        case 3 -> step;
        default -> null;
      };
    }

    @Override
    public String toString() {
      return "[::]";
    }
  }
}
