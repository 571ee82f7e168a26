package io.kvasir.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.engine.TokenLogprobs;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The JSON objects of OpenAI's completions and chat completions APIs: whole responses, stream
 * chunks, usage and log-probabilities. One instance per request (its id, creation time, model).
 */
final class Responses {
  private final boolean chat;
  private final String id;
  private final long created;
  private final String model;

  Responses(boolean chat, String id, long createdSeconds, String model) {
    this.chat = chat;
    this.id = id;
    this.created = createdSeconds;
    this.model = model;
  }

  String id() {
    return id;
  }

  private ObjectNode envelope(String object) {
    ObjectNode o = Json.MAPPER.createObjectNode();
    o.put("id", id);
    o.put("object", object);
    o.put("created", created);
    o.put("model", model);
    return o;
  }

  /** A whole response: {@code choices} of {@link #choice} objects and usage. */
  ObjectNode response(ArrayNode choices, ObjectNode usage) {
    ObjectNode o = envelope(chat ? "chat.completion" : "text_completion");
    o.set("choices", choices);
    o.set("usage", usage);
    return o;
  }

  /** One choice of a whole response; {@code logprobs} may be null. */
  ObjectNode choice(int index, String text, String finishReason, ObjectNode logprobs) {
    ObjectNode c = Json.MAPPER.createObjectNode();
    c.put("index", index);
    if (chat) {
      ObjectNode message = c.putObject("message");
      message.put("role", "assistant");
      message.put("content", text);
    } else {
      c.put("text", text);
    }
    c.set("logprobs", logprobs);
    c.put("finish_reason", finishReason);
    return c;
  }

  /**
   * A stream chunk with one choice. Chat: {@code delta} holds {@code role} when given and
   * {@code content} when non-null; completions: {@code text} ("" when null).
   */
  ObjectNode chunk(int index, String role, String text, String finishReason, ObjectNode logprobs,
      boolean usageField) {
    ObjectNode o = envelope(chat ? "chat.completion.chunk" : "text_completion");
    ObjectNode c = o.putArray("choices").addObject();
    c.put("index", index);
    if (chat) {
      ObjectNode delta = c.putObject("delta");
      if (role != null) {
        delta.put("role", role);
      }
      if (text != null) {
        delta.put("content", text);
      }
    } else {
      c.put("text", text == null ? "" : text);
    }
    c.set("logprobs", logprobs);
    c.put("finish_reason", finishReason);
    if (usageField) {
      o.putNull("usage");
    }
    return o;
  }

  /** The last chunk of {@code stream_options.include_usage}: no choices, the usage. */
  ObjectNode usageChunk(ObjectNode usage) {
    ObjectNode o = envelope(chat ? "chat.completion.chunk" : "text_completion");
    o.putArray("choices");
    o.set("usage", usage);
    return o;
  }

  static ObjectNode usage(int promptTokens, int completionTokens, int cachedPromptTokens) {
    ObjectNode u = Json.MAPPER.createObjectNode();
    u.put("prompt_tokens", promptTokens);
    u.put("completion_tokens", completionTokens);
    u.put("total_tokens", promptTokens + completionTokens);
    // OpenAI's prompt_tokens_details.cached_tokens: the prompt tokens the prefix cache supplied.
    u.putObject("prompt_tokens_details").put("cached_tokens", cachedPromptTokens);
    return u;
  }

  /**
   * Log-probabilities of consecutive tokens: chat {@code {"content": [...]}}; completions
   * {@code tokens}, {@code token_logprobs}, {@code top_logprobs}, {@code text_offset} (offsets
   * from {@code textOffset}, in characters of the generated text).
   */
  ObjectNode logprobs(List<TokenLogprobs> tokens, int textOffset) {
    ObjectNode o = Json.MAPPER.createObjectNode();
    if (chat) {
      ArrayNode content = o.putArray("content");
      for (TokenLogprobs t : tokens) {
        ObjectNode entry = tokenEntry(content.addObject(), t.token(), t.text(), t.logprob());
        ArrayNode top = entry.putArray("top_logprobs");
        for (TokenLogprobs.Alternative a : t.top()) {
          tokenEntry(top.addObject(), a.token(), a.text(), a.logprob());
        }
      }
      return o;
    }
    ArrayNode names = o.putArray("tokens");
    ArrayNode values = o.putArray("token_logprobs");
    ArrayNode tops = o.putArray("top_logprobs");
    ArrayNode offsets = o.putArray("text_offset");
    int offset = textOffset;
    for (TokenLogprobs t : tokens) {
      String text = tokenText(t.token(), t.text());
      names.add(text);
      values.add(t.logprob());
      ObjectNode top = tops.addObject();
      for (TokenLogprobs.Alternative a : t.top()) {
        top.put(tokenText(a.token(), a.text()), a.logprob());
      }
      offsets.add(offset);
      offset += text.length();
    }
    return o;
  }

  private static ObjectNode tokenEntry(ObjectNode e, int token, String text, double logprob) {
    String s = tokenText(token, text);
    e.put("token", s);
    e.put("logprob", logprob);
    ArrayNode bytes = e.putArray("bytes");
    for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
      bytes.add(b & 0xff);
    }
    return e;
  }

  // vLLM's spelling of a token without a tokenizer.
  private static String tokenText(int token, String text) {
    return text != null ? text : "token_id:" + token;
  }
}
