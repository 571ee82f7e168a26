package io.kvasir.server;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.SamplingParams;
import io.kvasir.model.tokenizer.ChatMessage;
import io.kvasir.policy.Policy;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Reads and checks the JSON body of {@code /v1/completions} and {@code /v1/chat/completions}.
 * Every problem is an {@link ApiException} naming the field; JSON null counts as absent. Unknown
 * fields are ignored, as OpenAI's clients send some the server has no use for ({@code user}).
 */
final class RequestParser {
  /** OpenAI's cap on top_logprobs / logprobs. */
  static final int MAX_TOP_LOGPROBS = 20;
  /** The most samples per request. */
  static final int MAX_N = 128;
  /** The most stop strings per request. */
  static final int MAX_STOPS = 16;
  /** OpenAI's default max_tokens of /v1/completions. */
  static final int COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

  private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant");

  private final ServedModel served;

  RequestParser(ServedModel served) {
    this.served = served;
  }

  ParsedRequest parse(JsonNode body, boolean chat) {
    if (body == null || !body.isObject()) {
      throw ApiException.invalid(null, "the request body must be a JSON object");
    }
    String model = string(body, "model");
    if (model == null) {
      throw ApiException.invalid("model", "model is required; this server serves \"" + served.id() + "\"");
    }
    if (!served.answersTo(model)) {
      throw ApiException.invalid("model", "the model \"" + model + "\" does not exist; this server serves \""
          + served.id() + "\"", "model_not_found");
    }
    rejectUnsupported(body, chat);
    checkPolicy(body);

    int[] prompt = chat ? chatPrompt(body) : completionPrompt(body);
    String promptField = chat ? "messages" : "prompt";
    int context = served.engine().maxContext();
    if (prompt.length >= context) {
      throw ApiException.invalid(promptField, "the prompt has " + prompt.length + " tokens; this model's context is "
          + context + " tokens, and at least one must be left to generate", "context_length_exceeded");
    }
    int maxTokens = maxTokens(body, chat, prompt.length, context);

    float temperature = (float) number(body, "temperature", 1.0, 0, 2, true, true);
    float topP = (float) number(body, "top_p", 1.0, 0, 1, false, true);
    Integer topK = integer(body, "top_k");
    if (topK != null && topK < -1) {
      throw ApiException.invalid("top_k", "top_k=" + topK + " must be >= 0 (0 or -1 = off)");
    }
    float minP = (float) number(body, "min_p", 0.0, 0, 1, true, true);
    float repetition = (float) number(body, "repetition_penalty", 1.0, 0, 100, false, true);
    Long seed = longValue(body, "seed");
    SamplingParams sampling = new SamplingParams(temperature, topK == null || topK < 0 ? 0 : topK, topP, minP,
        repetition, seed != null ? seed : ThreadLocalRandom.current().nextLong());

    Integer n = integer(body, "n");
    if (n != null && (n < 1 || n > MAX_N)) {
      throw ApiException.invalid("n", "n=" + n + " must be in [1, " + MAX_N + "]");
    }
    boolean stream = bool(body, "stream", false);
    boolean includeUsage = false;
    JsonNode streamOptions = present(body, "stream_options");
    if (streamOptions != null) {
      if (!streamOptions.isObject()) {
        throw ApiException.invalid("stream_options", "stream_options must be an object");
      }
      if (!stream) {
        throw ApiException.invalid("stream_options", "stream_options is only allowed with stream: true");
      }
      includeUsage = bool(streamOptions, "include_usage", false, "stream_options.include_usage");
    }

    boolean logprobs;
    int top;
    if (chat) {
      logprobs = bool(body, "logprobs", false);
      Integer t = integer(body, "top_logprobs");
      if (t != null && (t < 0 || t > MAX_TOP_LOGPROBS)) {
        throw ApiException.invalid("top_logprobs", "top_logprobs=" + t + " must be in [0, " + MAX_TOP_LOGPROBS + "]");
      }
      if (t != null && !logprobs) {
        throw ApiException.invalid("top_logprobs", "top_logprobs needs logprobs: true");
      }
      top = t == null ? 0 : t;
    } else {
      Integer t = integer(body, "logprobs");
      if (t != null && (t < 0 || t > MAX_TOP_LOGPROBS)) {
        throw ApiException.invalid("logprobs", "logprobs=" + t + " must be in [0, " + MAX_TOP_LOGPROBS + "]");
      }
      logprobs = t != null;
      top = t == null ? 0 : t;
    }

    GenerationRequest request = GenerationRequest.of(prompt, maxTokens, sampling).withStopStrings(stops(body))
        .withIgnoreEos(bool(body, "ignore_eos", false));
    if (seed != null) {
      // OpenAI's seed: the same seed and request give the same output in every call, so the
      // sampling stream is keyed by the seed alone, not by the engine's request counter.
      request = request.withSamplingKey(0);
    }
    return new ParsedRequest(chat, request, n == null ? 1 : n, stream, includeUsage, logprobs, top);
  }

  private int maxTokens(JsonNode body, boolean chat, int promptTokens, int context) {
    String field = present(body, "max_completion_tokens") != null ? "max_completion_tokens" : "max_tokens";
    Integer asked = integer(body, field);
    if (asked == null) {
      int left = context - promptTokens;
      return chat ? left : Math.min(COMPLETIONS_DEFAULT_MAX_TOKENS, left);
    }
    if (asked < 1) {
      throw ApiException.invalid(field, field + "=" + asked + " must be >= 1");
    }
    if ((long) promptTokens + asked > context) {
      throw ApiException.invalid(field, "this model's context is " + context + " tokens; the prompt has "
          + promptTokens + " and " + field + " asks for " + asked + " more", "context_length_exceeded");
    }
    return asked;
  }

  private void rejectUnsupported(JsonNode body, boolean chat) {
    for (String penalty : List.of("presence_penalty", "frequency_penalty")) {
      if (number(body, penalty, 0.0, -2, 2, true, true) != 0) {
        throw ApiException.invalid(penalty, penalty + " is not supported (use repetition_penalty); give 0 or leave"
            + " it out", "unsupported_parameter");
      }
    }
    JsonNode bias = present(body, "logit_bias");
    if (bias != null && !(bias.isObject() && bias.isEmpty())) {
      throw ApiException.invalid("logit_bias", "logit_bias is not supported", "unsupported_parameter");
    }
    for (String field : chat ? List.of("tools", "functions") : List.of("suffix")) {
      if (present(body, field) != null) {
        throw ApiException.invalid(field, field + " is not supported", "unsupported_parameter");
      }
    }
    if (!chat) {
      if (bool(body, "echo", false)) {
        throw ApiException.invalid("echo", "echo is not supported", "unsupported_parameter");
      }
      Integer bestOf = integer(body, "best_of");
      if (bestOf != null && bestOf != 1) {
        throw ApiException.invalid("best_of", "best_of is not supported (give 1 or leave it out)",
            "unsupported_parameter");
      }
    }
    JsonNode format = present(body, "response_format");
    if (format != null && !(format.isObject() && "text".equals(format.path("type").asText(null)))) {
      throw ApiException.invalid("response_format", "only response_format {\"type\": \"text\"} is supported",
          "unsupported_parameter");
    }
  }

  // The engine runs one policy for all its requests (EngineLoop shares one paged cache): a
  // per-request override is accepted only when it names the server's own policy.
  private void checkPolicy(JsonNode body) {
    String spec = string(body, "kvasir_policy");
    if (spec == null) {
      return;
    }
    Policy asked;
    try {
      asked = Policy.parse(spec);
    } catch (IllegalArgumentException e) {
      throw ApiException.invalid("kvasir_policy", e.getMessage());
    }
    if (!asked.equals(served.policy())) {
      throw ApiException.invalid("kvasir_policy", "this server runs the cache policy \"" + served.policy().spec()
          + "\" for every request and cannot switch per request; kvasir_policy \"" + asked.spec()
          + "\" differs (leave it out, or start a server with --policy " + asked.spec() + ")",
          "unsupported_parameter");
    }
  }

  private int[] completionPrompt(JsonNode body) {
    JsonNode prompt = present(body, "prompt");
    if (prompt == null) {
      throw ApiException.invalid("prompt", "prompt is required");
    }
    if (prompt.isTextual()) {
      return encode(prompt.asText(), "prompt");
    }
    if (prompt.isArray() && prompt.size() == 1 && prompt.get(0).isTextual()) {
      return encode(prompt.get(0).asText(), "prompt");
    }
    if (prompt.isArray() && prompt.size() == 1 && prompt.get(0).isArray()) {
      prompt = prompt.get(0);
    }
    if (prompt.isArray() && !prompt.isEmpty() && prompt.get(0).isNumber()) {
      int vocab = served.engine().shape().vocabSize();
      int[] ids = new int[prompt.size()];
      for (int i = 0; i < ids.length; ++i) {
        JsonNode id = prompt.get(i);
        if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || id.intValue() >= vocab) {
          throw ApiException.invalid("prompt", "prompt[" + i + "] is not a token id in [0, " + vocab + ")");
        }
        ids[i] = id.intValue();
      }
      return ids;
    }
    if (prompt.isArray() && prompt.size() > 1) {
      throw ApiException.invalid("prompt", "one prompt per request: give a string or an array of token ids");
    }
    throw ApiException.invalid("prompt", "prompt must be a non-empty string or an array of token ids");
  }

  private int[] chatPrompt(JsonNode body) {
    JsonNode messages = present(body, "messages");
    if (messages == null || !messages.isArray() || messages.isEmpty()) {
      throw ApiException.invalid("messages", "messages must be a non-empty array");
    }
    List<ChatMessage> list = new ArrayList<>();
    for (int i = 0; i < messages.size(); ++i) {
      JsonNode m = messages.get(i);
      String at = "messages[" + i + "]";
      if (!m.isObject()) {
        throw ApiException.invalid(at, at + " must be an object");
      }
      JsonNode role = m.get("role");
      if (role == null || !role.isTextual() || !ROLES.contains(role.asText())) {
        throw ApiException.invalid(at + ".role", at + ".role must be one of " + ROLES);
      }
      list.add(new ChatMessage(role.asText().equals("developer") ? "system" : role.asText(), content(m, at)));
    }
    requireTokenizer("messages");
    try {
      return served.engine().encodeChat(list);
    } catch (RuntimeException e) {
      throw ApiException.invalid("messages", "the chat template failed: " + e.getMessage());
    }
  }

  // A string, or an array of {"type": "text", "text": ...} parts joined.
  private static String content(JsonNode message, String at) {
    JsonNode content = message.get("content");
    if (content != null && content.isTextual()) {
      return content.asText();
    }
    if (content != null && content.isArray()) {
      StringBuilder text = new StringBuilder();
      for (JsonNode part : content) {
        if (!part.isObject() || !"text".equals(part.path("type").asText(null)) || !part.path("text").isTextual()) {
          throw ApiException.invalid(at + ".content", "only text content parts are supported");
        }
        text.append(part.get("text").asText());
      }
      return text.toString();
    }
    throw ApiException.invalid(at + ".content", at + ".content must be a string or an array of text parts");
  }

  private int[] encode(String text, String field) {
    if (text.isEmpty()) {
      throw ApiException.invalid(field, field + " is empty");
    }
    requireTokenizer(field);
    int[] ids = served.engine().encode(text);
    if (ids.length == 0) {
      throw ApiException.invalid(field, field + " encodes to no tokens");
    }
    return ids;
  }

  private void requireTokenizer(String field) {
    if (!served.engine().hasTokenizer()) {
      throw ApiException.invalid(field, "the model has no tokenizer: give the prompt of /v1/completions as token ids");
    }
  }

  private static List<String> stops(JsonNode body) {
    JsonNode stop = present(body, "stop");
    if (stop == null) {
      return List.of();
    }
    List<String> out = new ArrayList<>();
    if (stop.isTextual()) {
      out.add(stop.asText());
    } else if (stop.isArray()) {
      for (JsonNode s : stop) {
        if (!s.isTextual()) {
          throw ApiException.invalid("stop", "stop must be a string or an array of strings");
        }
        out.add(s.asText());
      }
    } else {
      throw ApiException.invalid("stop", "stop must be a string or an array of strings");
    }
    if (out.size() > MAX_STOPS || out.stream().anyMatch(String::isEmpty)) {
      throw ApiException.invalid("stop", "stop takes at most " + MAX_STOPS + " non-empty strings");
    }
    return out;
  }

  // ---- typed field access: a wrong type is a 400 naming the field ----

  private static JsonNode present(JsonNode body, String field) {
    JsonNode v = body.get(field);
    return v == null || v.isNull() ? null : v;
  }

  private static String string(JsonNode body, String field) {
    JsonNode v = present(body, field);
    if (v != null && !v.isTextual()) {
      throw ApiException.invalid(field, field + " must be a string");
    }
    return v == null ? null : v.asText();
  }

  private static boolean bool(JsonNode body, String field, boolean fallback) {
    return bool(body, field, fallback, field);
  }

  private static boolean bool(JsonNode body, String field, boolean fallback, String name) {
    JsonNode v = present(body, field);
    if (v != null && !v.isBoolean()) {
      throw ApiException.invalid(name, name + " must be a boolean");
    }
    return v == null ? fallback : v.booleanValue();
  }

  private static Integer integer(JsonNode body, String field) {
    JsonNode v = present(body, field);
    if (v == null) {
      return null;
    }
    if (!v.isIntegralNumber() && !(v.isNumber() && v.asDouble() == Math.rint(v.asDouble()))) {
      throw ApiException.invalid(field, field + " must be an integer");
    }
    if (!v.canConvertToInt() || v.asDouble() != (int) v.asDouble()) {
      throw ApiException.invalid(field, field + "=" + v.asText() + " is out of range");
    }
    return v.intValue();
  }

  private static Long longValue(JsonNode body, String field) {
    JsonNode v = present(body, field);
    if (v == null) {
      return null;
    }
    if (!v.isIntegralNumber() || !v.canConvertToLong()) {
      throw ApiException.invalid(field, field + " must be a 64-bit integer");
    }
    return v.longValue();
  }

  // A finite number in [min, max]; an open bound excludes itself.
  private static double number(JsonNode body, String field, double fallback, double min, double max,
      boolean minClosed, boolean maxClosed) {
    JsonNode v = present(body, field);
    if (v == null) {
      return fallback;
    }
    if (!v.isNumber()) {
      throw ApiException.invalid(field, field + " must be a number");
    }
    double x = v.asDouble();
    boolean ok = Double.isFinite(x) && (minClosed ? x >= min : x > min) && (maxClosed ? x <= max : x < max);
    if (!ok) {
      throw ApiException.invalid(field, field + "=" + v.asText() + " must be in " + (minClosed ? "[" : "(") + min
          + ", " + max + (maxClosed ? "]" : ")"));
    }
    return x;
  }
}
