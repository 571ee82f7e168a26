package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.el.TruthyTypeConverter;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import java.util.List;
import java.util.Map;
import jinjava.de.odysseus.el.ExpressionFactoryImpl;
import jinjava.de.odysseus.el.tree.TreeStore;
import jinjava.de.odysseus.el.tree.impl.Cache;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ExpressionFactory;

/**
 * Jinjava set up to render chat templates as transformers renders them with jinja2
 * ({@code ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)} plus its
 * {@code tojson}, {@code raise_exception} and {@code strftime_now}). Everything Jinjava lacks is
 * added through its extension points, none by rewriting template text:
 * <ul>
 *   <li>expression syntax: Python slices with steps, through its expression-parser builder
 *       ({@link PySliceSyntax}, installed by overriding {@link #getExpressionFactory()});</li>
 *   <li>Python string and dict methods: an {@code ELResolver} ahead of Jinjava's
 *       ({@link PyMethodResolver}, through {@code JinjavaConfig.withElResolver});</li>
 *   <li>filters ({@link PyFilters}), tests ({@link PyTests}), global functions ({@link PyFunctions}) and the
 *       {@code generation} block tag transformers defines, registered in the global context;</li>
 *   <li>jinja2's whitespace rules on the parsed tree ({@link Jinja2Whitespace});</li>
 *   <li>Python's {@code str()} of printed values ({@link PyRepr}, as the expression strategy);</li>
 *   <li>configuration: no nested interpretation (a message containing {@code {{ }}} is text),
 *       Python-style output of values, trimming for expressions and comments.</li>
 * </ul>
 */
final class PyJinjava extends Jinjava {
  private final ExpressionFactory expressions;

  PyJinjava() {
    super(config());
    // Jinjava builds its factory with its own syntax builder; this one differs only in the parser.
    expressions = new ExpressionFactoryImpl(new TreeStore(new PySliceSyntax.PyBuilder(), new Cache(1000)),
        new TruthyTypeConverter());
    Context globals = getGlobalContext();
    for (Filter f : PyFilters.all()) {
      globals.registerFilter(f);
    }
    for (ELFunctionDefinition f : PyFunctions.all()) {
      globals.registerFunction(f);
    }
    for (ExpTest t : PyTests.all()) {
      globals.registerExpTest(t);
    }
    globals.registerTag(new GenerationTag());
  }

  private static JinjavaConfig config() {
    CompositeELResolver resolver = new CompositeELResolver();
    resolver.add(new PyMethodResolver());
    resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
    return JinjavaConfig.newBuilder()
        .withTrimBlocks(true)
        // jinja2's lstrip_blocks is applied by Jinja2Whitespace; Jinjava's strips too much.
        .withLstripBlocks(false)
        // jinja2 drops the template's trailing newline, which ChatTemplate does on the source;
        // Jinjava's option strips the rendered output's instead, which is wrong.
        .withKeepTrailingNewline(true)
        .withNestedInterpretationEnabled(false)
        .withFailOnUnknownTokens(false)
        .withElResolver(resolver)
        .withMaxRenderDepth(10)
        .withLegacyOverrides(LegacyOverrides.newBuilder()
            .withUseTrimmingForNotesAndExpressions(true)
            .withParseWhitespaceControlStrictly(true)
            .withAllowAdjacentTextNodes(true)
            .withUsePyishObjectMapper(true)
            // "for k in dict" iterates keys, as in Python (Jinjava's default iterates values).
            .withIterateOverMapKeys(true)
            .withKeepNullableLoopValues(true)
            .withHandleBackslashInQuotesOnly(true)
            // Natural precedence parses "not x is defined" as "(not x) is defined"; jinja2 and
            // Jinjava's default both read "not (x is defined)".
            .withUseNaturalOperatorPrecedence(false)
            .build())
        .build();
  }

  @Override
  public ExpressionFactory getExpressionFactory() {
    return expressions;
  }

  /** Parses a template (source already normalized as jinja2's lexer does) into a render-ready tree. */
  Parsed parse(String source) {
    JinjavaInterpreter interpreter = newInterpreter();
    // Expression nodes take their output strategy from the context they are parsed in.
    interpreter.getContext().setExpressionStrategy(new PyRepr());
    try (var current = JinjavaInterpreter.closeablePushCurrent(interpreter).get()) {
      Node root = current.value().parse(source);
      List<TemplateError> errors = current.value().getErrorsCopy();
      Jinja2Whitespace.apply(root, source, getGlobalConfig());
      return new Parsed(root, errors);
    }
  }

  record Parsed(Node root, List<TemplateError> errors) {}

  /** Renders a parsed tree with {@code bindings}; returns the output and the errors Jinjava collected. */
  Rendered render(Node root, Map<String, ?> bindings) {
    Context context = new Context(getGlobalContext(), bindings, getGlobalConfig().getDisabled());
    JinjavaInterpreter interpreter = getGlobalConfig().getInterpreterFactory().newInstance(this, context,
        getGlobalConfig());
    try (var current = JinjavaInterpreter.closeablePushCurrent(interpreter).get()) {
      String output = current.value().render(root, false);
      return new Rendered(output, current.value().getErrorsCopy());
    }
  }

  record Rendered(String output, List<TemplateError> errors) {}

  /**
   * transformers' {@code {% generation %}...{% endgeneration %}} (its AssistantTracker marks the
   * assistant's tokens for training masks); for rendering text it outputs its body.
   */
  static final class GenerationTag implements Tag {
    private static final long serialVersionUID = 1L;

    @Override
    public String getName() {
      return "generation";
    }

    @Override
    public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
      StringBuilder out = new StringBuilder();
      for (Node child : tagNode.getChildren()) {
        out.append(child.render(interpreter).getValue());
      }
      return out.toString();
    }
  }
}
