package io.kvasir.model.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.objects.collections.PyList;
import com.hubspot.jinjava.objects.collections.PyMap;
import com.hubspot.jinjava.tree.Node;
import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.stream.Collectors;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The chat template of a model: turns a conversation into the prompt text the model was trained
 * on, rendering the Jinja template of {@code tokenizer_config.json} exactly as transformers'
 * {@code apply_chat_template} does with Python jinja2 (see {@link PyJinjava} for how Jinjava is
 * brought there). The variables are transformers': {@code messages}, {@code tools} (none unless
 * given), {@code documents}, {@code add_generation_prompt}, the special tokens of
 * {@code tokenizer_config.json} ({@code bos_token}, {@code eos_token}, ...) and any extra
 * variables of the call ({@code enable_thinking} for Qwen3, {@code date_string} for Llama 3.1).
 *
 * <p>Immutable and thread-safe: the template is parsed once; each render has its own context.
 */
public final class ChatTemplate {
  private static final Logger LOG = LogManager.getLogger(ChatTemplate.class);
  private static final PyJinjava JINJA = new PyJinjava();

  /** Fields of tokenizer_config.json that transformers passes to templates (its special_tokens_map). */
  private static final List<String> SPECIAL_TOKEN_FIELDS = List.of("bos_token", "eos_token", "unk_token",
      "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens");
  /** Newer checkpoints ship the template as its own file beside tokenizer_config.json. */
  public static final String TEMPLATE_FILE = "chat_template.jinja";

  private final String source;
  private final Node root;
  private final Map<String, Object> specialTokens;
  private final Clock clock;

  private ChatTemplate(String source, Node root, Map<String, Object> specialTokens, Clock clock) {
    this.source = source;
    this.root = root;
    this.specialTokens = specialTokens;
    this.clock = clock;
  }

  /**
   * The template of a model directory: {@code chat_template} of {@code tokenizer_config.json}
   * (a string, or a list of named templates of which "default" is taken), else
   * {@code chat_template.jinja}; special tokens from {@code tokenizer_config.json}.
   *
   * @throws CheckpointException when neither file has a template, or a file is malformed
   * @throws ChatTemplateException when the template does not parse
   */
  public static ChatTemplate load(Path modelDir) throws IOException {
    JsonFile config = JsonFile.readOptional(modelDir, SpecialTokens.TOKENIZER_CONFIG);
    Map<String, Object> tokens = specialTokens(config);
    JsonNode field = config.get("chat_template");
    if (field != null) {
      return parse(templateText(config, field), config.path() + " (chat_template)", tokens);
    }
    Path file = modelDir.resolve(TEMPLATE_FILE);
    if (Files.isRegularFile(file)) {
      return parse(Files.readString(file, StandardCharsets.UTF_8), file.toString(), tokens);
    }
    throw new CheckpointException(config.path() + ": no \"chat_template\" (and no " + TEMPLATE_FILE
        + " beside it); this model has no chat template, so prompts must be given as plain text");
  }

  /**
   * A template given as text.
   *
   * @param source where it came from, for error messages
   * @param specialTokens {@code bos_token}, {@code eos_token} and the like, passed to every render
   */
  public static ChatTemplate of(String template, String source, Map<String, ?> specialTokens) {
    return parse(template, source, new LinkedHashMap<>(specialTokens));
  }

  private static ChatTemplate parse(String template, String source, Map<String, Object> tokens) {
    long start = System.nanoTime();
    PyJinjava.Parsed parsed;
    try {
      parsed = JINJA.parse(jinja2Source(template));
    } catch (RuntimeException e) {
      throw new ChatTemplateException(source + ": cannot parse the chat template: " + e.getMessage(), e);
    }
    List<TemplateError> fatal = fatal(parsed.errors());
    if (!fatal.isEmpty()) {
      throw new ChatTemplateException(source + ": cannot parse the chat template: " + describe(fatal));
    }
    LOG.debug("chat template {} parsed in {} us", source, (System.nanoTime() - start) / 1000);
    return new ChatTemplate(source, parsed.root(), Collections.unmodifiableMap(tokens), Clock.systemDefaultZone());
  }

  /**
   * What jinja2's lexer does to a source before anything else: every line break becomes
   * {@code \n}, and one trailing newline is dropped ({@code keep_trailing_newline=False}).
   */
  private static String jinja2Source(String template) {
    String normalized = template.replace("\r\n", "\n").replace('\r', '\n');
    return normalized.endsWith("\n") ? normalized.substring(0, normalized.length() - 1) : normalized;
  }

  private static String templateText(JsonFile config, JsonNode field) {
    if (field.isTextual()) {
      return field.textValue();
    }
    if (field.isArray()) {
      for (JsonNode named : field) {
        if (named.isObject() && "default".equals(named.path("name").asText(null)) && named.path("template").isTextual()) {
          return named.get("template").textValue();
        }
      }
      throw config.error("chat_template", "a list of named templates without one named \"default\"");
    }
    throw config.error("chat_template", "expected a string or a list of {name, template}, found " + field.getNodeType());
  }

  private static Map<String, Object> specialTokens(JsonFile config) {
    Map<String, Object> tokens = new LinkedHashMap<>();
    for (String field : SPECIAL_TOKEN_FIELDS) {
      if (field.equals("additional_special_tokens")) {
        JsonNode list = config.get(field);
        if (list != null && list.isArray() && !list.isEmpty()) {
          List<String> texts = new ArrayList<>();
          for (JsonNode t : list) {
            texts.add(t.isTextual() ? t.textValue() : t.path("content").asText());
          }
          tokens.put(field, texts);
        }
      } else {
        SpecialTokens.tokenText(config, field).ifPresent(text -> tokens.put(field, text));
      }
    }
    return tokens;
  }

  /** This template with {@code strftime_now} reading {@code clock} (tests fix the date with it). */
  public ChatTemplate withClock(Clock clock) {
    return new ChatTemplate(source, root, specialTokens, Objects.requireNonNull(clock));
  }

  /** Where the template came from. */
  public String source() {
    return source;
  }

  /** The special tokens passed to every render ({@code bos_token}, {@code eos_token}, ...). */
  public Map<String, Object> specialTokens() {
    return specialTokens;
  }

  /** The {@code bos_token} text templates see, if the model has one. */
  public Optional<String> bosToken() {
    return Optional.ofNullable((String) specialTokens.get("bos_token"));
  }

  /** The {@code eos_token} text templates see, if the model has one. */
  public Optional<String> eosToken() {
    return Optional.ofNullable((String) specialTokens.get("eos_token"));
  }

  /** Renders {@code messages} ({@link ChatMessage}s or maps with "role" and "content"). */
  public String render(List<?> messages, boolean addGenerationPrompt) {
    return render(messages, addGenerationPrompt, Map.of());
  }

  /**
   * Renders a conversation.
   *
   * @param messages {@link ChatMessage}s, or maps as transformers takes them (role, content and
   *     any other fields a template reads: tool_calls, reasoning_content, ...)
   * @param addGenerationPrompt end with the header of an assistant turn, to generate one
   * @param variables extra template variables; they override the special tokens, and
   *     {@code tools} here is the tool list ({@code none} when absent)
   * @throws ChatTemplateException when the template raises (its message) or fails
   */
  public String render(List<?> messages, boolean addGenerationPrompt, Map<String, ?> variables) {
    Map<String, Object> bindings = new LinkedHashMap<>();
    bindings.putAll(specialTokens);
    for (Map.Entry<String, ?> e : variables.entrySet()) {
      bindings.put(e.getKey(), python(e.getValue()));
    }
    bindings.put("messages", python(messages.stream().map(ChatTemplate::message).collect(Collectors.toList())));
    bindings.putIfAbsent("tools", null);
    bindings.putIfAbsent("documents", null);
    bindings.put("add_generation_prompt", addGenerationPrompt);
    // Defined, as jinja2's globals are ("strftime_now is defined"); calls go to the EL functions.
    bindings.put("raise_exception", "<function raise_exception>");
    bindings.put("strftime_now", "<function strftime_now>");
    PyFunctions.RenderState state = new PyFunctions.RenderState(clock);
    bindings.put(PyFunctions.STATE, state);

    PyJinjava.Rendered rendered;
    try {
      rendered = JINJA.render(root, bindings);
    } catch (ChatTemplateException e) {
      throw new ChatTemplateException(source + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      throw new ChatTemplateException(source + ": cannot render the chat template: " + e.getMessage(), e);
    }
    if (state.raised != null) {
      throw new ChatTemplateException(source + ": the chat template raised: " + state.raised);
    }
    List<TemplateError> fatal = fatal(rendered.errors());
    if (!fatal.isEmpty()) {
      throw new ChatTemplateException(source + ": cannot render the chat template: " + describe(fatal));
    }
    if (!rendered.errors().isEmpty() && LOG.isDebugEnabled()) {
      LOG.debug("chat template {}: warnings: {}", source, describe(rendered.errors()));
    }
    return rendered.output();
  }

  private static Object message(Object m) {
    if (m instanceof ChatMessage c) {
      return c.toMap();
    }
    if (m instanceof Map<?, ?>) {
      return m;
    }
    throw new IllegalArgumentException("a message is a ChatMessage or a map, not " + m);
  }

  /** Maps and lists as Jinjava's Python-like collections (dict.items(), list methods), recursively. */
  private static Object python(Object v) {
    if (v instanceof Map<?, ?> map) {
      Map<String, Object> copy = new LinkedHashMap<>();
      map.forEach((k, val) -> copy.put(String.valueOf(k), python(val)));
      return new PyMap(copy);
    }
    if (v instanceof Collection<?> items) {
      List<Object> copy = new ArrayList<>(items.size());
      items.forEach(item -> copy.add(python(item)));
      return new PyList(copy);
    }
    if (v instanceof Integer || v instanceof Short || v instanceof Byte) {
      return ((Number) v).longValue(); // Jinjava's arithmetic and comparisons are on longs
    }
    return v;
  }

  private static List<TemplateError> fatal(List<TemplateError> errors) {
    return errors.stream().filter(e -> e.getSeverity() == TemplateError.ErrorType.FATAL).collect(Collectors.toList());
  }

  private static String describe(List<TemplateError> errors) {
    return errors.stream().map(e -> "line " + e.getLineno() + ": " + e.getMessage()).collect(Collectors.joining("; "));
  }

  @Override
  public String toString() {
    return "ChatTemplate[" + source + "]";
  }
}
