package io.kvasir.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Chat templates against Python jinja2 with transformers' settings
 * (tools/tokenizers/render_templates.py): the real Qwen3 and Llama 3 / 3.1 / 3.2 templates on
 * several conversations, and one-feature snippets that pin down each extension of Jinjava.
 */
class ChatTemplateTest {
  private static final JsonNode FIXTURE = TokenizerCache.fixture("chat_templates.json");
  // The instant the generator's strftime_now reported (a naive local time).
  private static final Clock CLOCK = Clock.fixed(
      LocalDateTime.parse(FIXTURE.get("now").asText()).atZone(ZoneId.systemDefault()).toInstant(),
      ZoneId.systemDefault());

  @TempDir
  Path dir;

  /** The template as a model directory gives it: tokenizer_config.json, or a .jinja file with that config's tokens. */
  static ChatTemplate template(String name) {
    String source = FIXTURE.get("templates").get(name).asText();
    try {
      Path file = TokenizerCache.file(source);
      if (source.endsWith(".jinja")) {
        String configName = FIXTURE.get("special_tokens").get(name).has("bos_token") ? "llama3_1" : "qwen3";
        ChatTemplate withTokens = ChatTemplate.load(TokenizerCache.modelDir(configName));
        return ChatTemplate.of(Files.readString(file), file.toString(), withTokens.specialTokens()).withClock(CLOCK);
      }
      return ChatTemplate.load(file.getParent()).withClock(CLOCK);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Map<String, Object> map(JsonNode node) {
    return TokenizerCache.JSON.convertValue(node, new TypeReference<LinkedHashMap<String, Object>>() {});
  }

  static List<Object> list(JsonNode node) {
    return TokenizerCache.JSON.convertValue(node, new TypeReference<List<Object>>() {});
  }

  static Stream<Arguments> conversations() {
    List<Arguments> out = new ArrayList<>();
    FIXTURE.get("cases").forEach(c -> out.add(Arguments.of(c.get("label").asText(), c)));
    return out.stream();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("conversations")
  void rendersRealTemplatesExactlyLikeJinja2(String label, JsonNode c) {
    ChatTemplate t = template(c.get("template").asText());
    assertEquals(map(FIXTURE.get("special_tokens").get(c.get("template").asText())), t.specialTokens(),
        "special tokens passed to the template");
    List<Object> messages = list(c.get("messages"));
    boolean generationPrompt = c.get("add_generation_prompt").asBoolean();
    Map<String, Object> variables = map(c.get("variables"));
    if (c.has("expected_error")) {
      ChatTemplateException e = assertThrows(ChatTemplateException.class,
          () -> t.render(messages, generationPrompt, variables));
      assertTrue(e.getMessage().contains(c.get("expected_error").asText()), e.getMessage());
      assertTrue(e.getMessage().contains(t.source()), "names the template: " + e.getMessage());
    } else {
      assertEquals(c.get("expected").asText(), t.render(messages, generationPrompt, variables), label);
    }
  }

  static Stream<Arguments> snippets() {
    List<Arguments> out = new ArrayList<>();
    FIXTURE.get("snippets").forEach(s -> out.add(Arguments.of(s.get("template").asText(), s)));
    return out.stream();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("snippets")
  void snippetsRenderExactlyLikeJinja2(String template, JsonNode s) {
    ChatTemplate t = ChatTemplate.of(template, "snippet", Map.of()).withClock(CLOCK);
    Map<String, Object> variables = map(FIXTURE.get("snippet_variables"));
    List<Object> messages = list(FIXTURE.get("snippet_variables").get("messages"));
    variables.remove("messages");
    if (s.has("expected_error")) {
      ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> t.render(messages, false, variables));
      assertTrue(e.getMessage().contains(s.get("expected_error").asText()), e.getMessage());
    } else {
      assertEquals(s.get("expected").asText(), t.render(messages, false, variables));
    }
  }

  @Test
  void chatMessagesRenderLikeMaps() {
    ChatTemplate t = template("qwen3");
    List<Object> maps = List.of(Map.of("role", "system", "content", "Be brief."), Map.of("role", "user", "content", "Hi"));
    assertEquals(t.render(maps, true), t.render(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi")), true));
  }

  @Test
  void concurrentRendersOfOneTemplateAgree() throws Exception {
    // One parsed tree, one shared engine: renders on several threads must not see each other's state.
    ChatTemplate t = template("qwen3");
    List<JsonNode> cases = new ArrayList<>();
    FIXTURE.get("cases").forEach(c -> {
      if (c.get("template").asText().equals("qwen3") && c.has("expected")) {
        cases.add(c);
      }
    });
    var pool = java.util.concurrent.Executors.newFixedThreadPool(4);
    try {
      List<java.util.concurrent.Future<?>> done = new ArrayList<>();
      for (int i = 0; i < 40; i++) {
        JsonNode c = cases.get(i % cases.size());
        done.add(pool.submit(() -> assertEquals(c.get("expected").asText(), t.render(list(c.get("messages")),
            c.get("add_generation_prompt").asBoolean(), map(c.get("variables"))), c.get("label").asText())));
      }
      for (var f : done) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aListOfNamedTemplatesUsesTheDefaultOne() throws IOException {
    Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": \"</s>\", \"chat_template\": ["
        + "{\"name\": \"tool_use\", \"template\": \"TOOLS\"},"
        + "{\"name\": \"default\", \"template\": \"{{ messages|length }} turns{{ eos_token }}\\n\"}]}");
    ChatTemplate t = ChatTemplate.load(dir);
    assertEquals("1 turns</s>", t.render(List.of(ChatMessage.user("x")), false));
  }

  @Test
  void errorsNameTheFile() throws IOException {
    Path config = dir.resolve("tokenizer_config.json");
    Files.writeString(config, "{\"eos_token\": \"</s>\"}");
    CheckpointException missing = assertThrows(CheckpointException.class, () -> ChatTemplate.load(dir));
    assertTrue(missing.getMessage().contains(config.toString()) && missing.getMessage().contains("chat_template"),
        missing.getMessage());

    Files.writeString(config, "{\"chat_template\": \"{% for m in messages %}{{ m.content }}\"}");
    ChatTemplateException unclosed = assertThrows(ChatTemplateException.class, () -> ChatTemplate.load(dir));
    assertTrue(unclosed.getMessage().contains(config.toString()), unclosed.getMessage());

    Files.writeString(config, "{\"chat_template\": 42}");
    CheckpointException wrongType = assertThrows(CheckpointException.class, () -> ChatTemplate.load(dir));
    assertTrue(wrongType.getMessage().contains("chat_template"), wrongType.getMessage());

    Files.writeString(config, "{\"chat_template\": \"{{ ");
    CheckpointException malformed = assertThrows(CheckpointException.class, () -> ChatTemplate.load(dir));
    assertTrue(malformed.getMessage().contains(config.toString()) && malformed.getMessage().contains("malformed"),
        malformed.getMessage());
  }

  @Test
  void aTemplateFileBesideTheConfigIsUsedWhenTheConfigHasNone() throws IOException {
    Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": \"<s>\"}");
    Files.writeString(dir.resolve(ChatTemplate.TEMPLATE_FILE), "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{% endfor %}\n");
    assertEquals("<s>[user]", ChatTemplate.load(dir).render(List.of(ChatMessage.user("x")), false));
  }
}
