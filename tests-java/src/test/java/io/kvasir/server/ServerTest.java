package io.kvasir.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvasir.engine.Engine;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.LoopMetrics;
import io.kvasir.engine.SamplingParams;
import io.kvasir.model.tokenizer.ChatMessage;
import java.io.IOException;
import java.io.InputStream;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code kvasir serve} over loopback: tiny:llama on the CPU, outputs against the engine's own generate. */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ServerTest {
  @TempDir
  static Path cache;

  static ServerFixture fx;
  static Engine ref;  // same build as the server's engine, no loop: generate() is the oracle

  @BeforeAll
  static void start() throws IOException {
    System.setProperty("kvasir.cache", cache.toString());
    ref = ServerFixture.engine(8, 160);
    fx = new ServerFixture(8, 128, 160, 64 * 1024);
  }

  @AfterAll
  static void stop() {
    if (fx != null) {
      fx.close();
    }
    if (ref != null) {
      ref.close();
    }
    System.clearProperty("kvasir.cache");
  }

  private static GenerationResult expected(int[] prompt, int maxTokens) {
    return ref.generate(GenerationRequest.of(prompt, maxTokens, SamplingParams.greedy()).withIgnoreEos(true));
  }

  private static String completionBody(String prompt, int maxTokens, String extra) {
    return "{\"model\":\"tiny:llama\",\"prompt\":" + quote(prompt) + ",\"max_tokens\":" + maxTokens
        + ",\"temperature\":0,\"ignore_eos\":true" + extra + "}";
  }

  private static String chatBody(String user, int maxTokens, String extra) {
    return "{\"model\":\"tiny:llama\",\"messages\":[{\"role\":\"user\",\"content\":" + quote(user) + "}],"
        + "\"max_tokens\":" + maxTokens + ",\"temperature\":0,\"ignore_eos\":true" + extra + "}";
  }

  private static String quote(String s) {
    try {
      return ServerFixture.JSON.writeValueAsString(s);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void completionMatchesGenerate() throws Exception {
    GenerationResult want = expected(ref.encode("Hello there"), 12);
    HttpResponse<String> r = fx.post("/v1/completions", completionBody("Hello there", 12, ""));
    assertEquals(200, r.statusCode(), r.body());
    JsonNode o = ServerFixture.json(r.body());
    assertEquals("text_completion", o.get("object").asText());
    assertEquals("tiny:llama", o.get("model").asText());
    assertEquals(want.text(), o.at("/choices/0/text").asText());
    assertEquals("length", o.at("/choices/0/finish_reason").asText());
    assertEquals(ref.encode("Hello there").length, o.at("/usage/prompt_tokens").asInt());
    assertEquals(12, o.at("/usage/completion_tokens").asInt());
    assertEquals(12 + ref.encode("Hello there").length, o.at("/usage/total_tokens").asInt());
  }

  // OpenAI's seed: a sampled completion with a seed repeats in every call (and equals the engine's
  // own keyed run); the temperature is high enough that 16 tokens would not repeat by chance.
  @Test
  void aSeedRepeatsSampledOutputAcrossCalls() throws Exception {
    String body = "{\"model\":\"tiny:llama\",\"prompt\":\"Seeds repeat\",\"max_tokens\":16,\"temperature\":1.5,"
        + "\"seed\":1234,\"ignore_eos\":true}";
    HttpResponse<String> a = fx.post("/v1/completions", body);
    HttpResponse<String> b = fx.post("/v1/completions", body);
    assertEquals(200, a.statusCode(), a.body());
    String text = ServerFixture.json(a.body()).at("/choices/0/text").asText();
    assertEquals(text, ServerFixture.json(b.body()).at("/choices/0/text").asText());
    GenerationResult want = ref.generate(GenerationRequest.of(ref.encode("Seeds repeat"), 16,
        SamplingParams.sample(1.5f, 1234)).withIgnoreEos(true).withSamplingKey(0));
    assertEquals(want.text(), text, "the engine's run keyed by the seed alone");
  }

  // usage.prompt_tokens_details.cached_tokens: a repeated prompt finds its full pages in the
  // prefix cache (whole pages of the fixture's 8 tokens, never the last prompt token).
  @Test
  void usageCountsThePromptTokensTheCacheSupplied() throws Exception {
    String prompt = "A prompt long enough to fill a few pages of the prefix cache, said twice.";
    HttpResponse<String> first = fx.post("/v1/completions", completionBody(prompt, 4, ""));
    HttpResponse<String> second = fx.post("/v1/completions", completionBody(prompt, 4, ""));
    assertEquals(200, first.statusCode(), first.body());
    JsonNode a = ServerFixture.json(first.body()).get("usage");
    JsonNode b = ServerFixture.json(second.body()).get("usage");
    int promptTokens = b.get("prompt_tokens").asInt();
    assertEquals(0, a.at("/prompt_tokens_details/cached_tokens").asInt(), "the first time nothing is cached");
    assertEquals((promptTokens - 1) / 8 * 8, b.at("/prompt_tokens_details/cached_tokens").asInt(),
        "the second time every full page before the last prompt token");
  }

  @Test
  void tokenIdPrompt() throws Exception {
    int[] ids = {5, 17, 99, 3, 42};
    GenerationResult want = expected(ids, 6);
    HttpResponse<String> r = fx.post("/v1/completions", "{\"model\":\"tiny:llama\",\"prompt\":[5,17,99,3,42],"
        + "\"max_tokens\":6,\"temperature\":0,\"ignore_eos\":true}");
    assertEquals(200, r.statusCode(), r.body());
    assertEquals(want.text(), ServerFixture.json(r.body()).at("/choices/0/text").asText());
    assertEquals(5, ServerFixture.json(r.body()).at("/usage/prompt_tokens").asInt());
  }

  @Test
  void completionStreamMatchesGenerate() throws Exception {
    GenerationResult want = expected(ref.encode("Stream me"), 10);
    HttpResponse<String> r = fx.post("/v1/completions", completionBody("Stream me", 10,
        ",\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
    assertEquals(200, r.statusCode(), r.body());
    assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
    List<JsonNode> events = ServerFixture.sse(r.body());
    StringBuilder text = new StringBuilder();
    String finish = null;
    for (int i = 0; i < events.size() - 1; ++i) {
      JsonNode e = events.get(i);
      assertEquals("text_completion", e.get("object").asText());
      assertTrue(e.has("usage") && e.get("usage").isNull(), "usage: null on every chunk but the last");
      JsonNode c = e.at("/choices/0");
      text.append(c.get("text").asText());
      if (!c.get("finish_reason").isNull()) {
        finish = c.get("finish_reason").asText();
      }
    }
    assertEquals(want.text(), text.toString());
    assertEquals("length", finish);
    JsonNode last = events.get(events.size() - 1);
    assertEquals(0, last.get("choices").size());
    assertEquals(10, last.at("/usage/completion_tokens").asInt());
    assertEquals(ref.encode("Stream me").length, last.at("/usage/prompt_tokens").asInt());
  }

  @Test
  void chatMatchesGenerateBothWays() throws Exception {
    GenerationResult want = expected(ref.encodeChat(List.of(ChatMessage.user("How are you?"))), 9);
    HttpResponse<String> r = fx.post("/v1/chat/completions", chatBody("How are you?", 9, ""));
    assertEquals(200, r.statusCode(), r.body());
    JsonNode o = ServerFixture.json(r.body());
    assertEquals("chat.completion", o.get("object").asText());
    assertEquals("assistant", o.at("/choices/0/message/role").asText());
    assertEquals(want.text(), o.at("/choices/0/message/content").asText());
    assertEquals(9, o.at("/usage/completion_tokens").asInt());

    HttpResponse<String> s = fx.post("/v1/chat/completions", chatBody("How are you?", 9, ",\"stream\":true"));
    assertEquals(200, s.statusCode(), s.body());
    List<JsonNode> events = ServerFixture.sse(s.body());
    assertEquals("assistant", events.get(0).at("/choices/0/delta/role").asText());
    StringBuilder text = new StringBuilder();
    int finishes = 0;
    for (JsonNode e : events) {
      assertEquals("chat.completion.chunk", e.get("object").asText());
      assertFalse(e.has("usage"), "no usage field without include_usage");
      JsonNode c = e.at("/choices/0");
      if (c.at("/delta/content").isTextual()) {
        text.append(c.at("/delta/content").asText());
      }
      if (!c.get("finish_reason").isNull()) {
        ++finishes;
        assertEquals("length", c.get("finish_reason").asText());
      }
    }
    assertEquals(1, finishes);
    assertEquals(want.text(), text.toString());
  }

  @Test
  void samplesAndLogprobs() throws Exception {
    HttpResponse<String> r = fx.post("/v1/chat/completions", "{\"model\":\"tiny:llama\",\"messages\":[{\"role\":"
        + "\"user\",\"content\":\"hi\"}],\"max_tokens\":5,\"n\":2,\"temperature\":0.9,\"seed\":7,\"ignore_eos\":true,"
        + "\"logprobs\":true,\"top_logprobs\":3}");
    assertEquals(200, r.statusCode(), r.body());
    JsonNode o = ServerFixture.json(r.body());
    assertEquals(2, o.get("choices").size());
    assertEquals(10, o.at("/usage/completion_tokens").asInt());
    for (int i = 0; i < 2; ++i) {
      JsonNode c = o.get("choices").get(i);
      assertEquals(i, c.get("index").asInt());
      JsonNode content = c.at("/logprobs/content");
      assertEquals(5, content.size());
      for (JsonNode t : content) {
        assertTrue(t.get("logprob").asDouble() <= 0);
        assertEquals(3, t.get("top_logprobs").size());
        assertTrue(t.get("bytes").isArray());
      }
    }
    HttpResponse<String> c = fx.post("/v1/completions", completionBody("abc", 4, ",\"logprobs\":2"));
    assertEquals(200, c.statusCode(), c.body());
    JsonNode lp = ServerFixture.json(c.body()).at("/choices/0/logprobs");
    assertEquals(4, lp.get("tokens").size());
    assertEquals(4, lp.get("token_logprobs").size());
    assertEquals(4, lp.get("text_offset").size());
  }

  @Test
  void stopStringAndPolicyOfTheServer() throws Exception {
    GenerationResult want = expected(ref.encode("Stop here"), 12);
    String stop = want.text().length() > 4 ? want.text().substring(2, 4) : "zz";
    HttpResponse<String> r = fx.post("/v1/completions", completionBody("Stop here", 12,
        ",\"stop\":" + quote(stop) + ",\"kvasir_policy\":\"full\""));
    assertEquals(200, r.statusCode(), r.body());
    String text = ServerFixture.json(r.body()).at("/choices/0/text").asText();
    assertTrue(want.text().startsWith(text) && !text.contains(stop), text + " / " + want.text());
  }

  @ParameterizedTest(name = "{0} {1} -> {2} {3}")
  @CsvSource(delimiter = '|', value = {
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\"|400|",
      "/v1/completions|[1,2]|400|",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"temperature\":-1}|400|temperature",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"temperature\":\"hot\"}|400|temperature",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"top_p\":0}|400|top_p",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"top_p\":1.5}|400|top_p",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"max_tokens\":0}|400|max_tokens",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"max_tokens\":100000}|400|max_tokens",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"max_tokens\":1.5}|400|max_tokens",
      "/v1/chat/completions|{\"model\":\"tiny:llama\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
          + "\"max_completion_tokens\":-3}|400|max_completion_tokens",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"n\":0}|400|n",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"n\":9}|400|n",
      "/v1/completions|{\"model\":\"gpt-4\",\"prompt\":\"x\"}|400|model",
      "/v1/completions|{\"prompt\":\"x\"}|400|model",
      "/v1/completions|{\"model\":\"tiny:llama\"}|400|prompt",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":[1,-2]}|400|prompt",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"stop\":5}|400|stop",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"presence_penalty\":0.5}|400|presence_penalty",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"frequency_penalty\":1}|400|frequency_penalty",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"stream\":\"yes\"}|400|stream",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"logprobs\":true}|400|logprobs",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"kvasir_policy\":\"quest:k=64\"}|400|kvasir_policy",
      "/v1/completions|{\"model\":\"tiny:llama\",\"prompt\":\"x\",\"kvasir_policy\":\"nonsense\"}|400|kvasir_policy",
      "/v1/chat/completions|{\"model\":\"tiny:llama\",\"messages\":[]}|400|messages",
      "/v1/chat/completions|{\"model\":\"tiny:llama\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}|400"
          + "|messages[0].role",
      "/v1/chat/completions|{\"model\":\"tiny:llama\",\"messages\":[{\"role\":\"user\",\"content\":7}]}|400"
          + "|messages[0].content",
      "/v1/chat/completions|{\"model\":\"tiny:llama\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
          + "\"top_logprobs\":2}|400|top_logprobs",
      "/v1/nothing|{}|404|",
  })
  void errors(String path, String body, int status, String param) throws Exception {
    HttpResponse<String> r = fx.post(path, body);
    assertEquals(status, r.statusCode(), r.body());
    JsonNode error = ServerFixture.json(r.body()).get("error");
    assertNotNull(error, r.body());
    assertTrue(error.get("message").isTextual());
    assertTrue(error.get("type").isTextual());
    if (param == null) {
      assertTrue(error.get("param").isNull(), r.body());
    } else {
      assertEquals(param, error.get("param").asText(), r.body());
    }
    if (status == 400) {
      assertEquals("invalid_request_error", error.get("type").asText());
    }
  }

  @Test
  void promptLongerThanTheContext() throws Exception {
    String longPrompt = "x".repeat(400);  // byte-level: a token per byte, context 160
    HttpResponse<String> r = fx.post("/v1/completions", completionBody(longPrompt, 4, ""));
    assertEquals(400, r.statusCode(), r.body());
    assertEquals("prompt", ServerFixture.json(r.body()).at("/error/param").asText());
    HttpResponse<String> c = fx.post("/v1/chat/completions", chatBody(longPrompt, 4, ""));
    assertEquals(400, c.statusCode(), c.body());
    assertEquals("messages", ServerFixture.json(c.body()).at("/error/param").asText());
  }

  @Test
  void bodyOverTheLimit() throws Exception {
    HttpResponse<String> r = fx.post("/v1/completions", completionBody("y".repeat(70 * 1024), 4, ""));
    assertEquals(413, r.statusCode(), r.body());
    assertEquals("request_too_large", ServerFixture.json(r.body()).at("/error/code").asText());
  }

  @Test
  void fullQueueIs429() throws Exception {
    // One running and one waiting slot; long streams are opened (and held) until one is refused.
    try (ServerFixture small = new ServerFixture(ServerFixture.engine(1, 4096), 1, 32, 1 << 20)) {
      String body = completionBody("busy", 4000, ",\"stream\":true");
      List<InputStream> held = new ArrayList<>();
      HttpResponse<InputStream> rejected = null;
      try {
        for (int i = 0; i < 20 && rejected == null; ++i) {
          HttpResponse<InputStream> r = small.client.send(HttpRequest.newBuilder(small.uri("/v1/completions"))
              .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
          if (r.statusCode() == 429) {
            rejected = r;
          } else {
            assertEquals(200, r.statusCode());
            held.add(r.body());
          }
        }
        assertNotNull(rejected, "20 long streams against one running and one waiting slot: none was refused");
        assertEquals("1", rejected.headers().firstValue("Retry-After").orElse(null));
        String error = new String(rejected.body().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals("rate_limit_exceeded", ServerFixture.json(error).at("/error/code").asText());
      } finally {
        for (InputStream in : held) {
          in.close();
        }
      }
    }
  }

  @Test
  void clientLeavingMidStreamFreesPages() throws Exception {
    // A long generation (context 4096) so the client leaves while it runs; the server notices
    // at its next failed write.
    try (ServerFixture own = new ServerFixture(ServerFixture.engine(2, 4096), 4, 8, 1 << 20)) {
      HttpResponse<InputStream> r = own.client.send(HttpRequest.newBuilder(own.uri("/v1/completions"))
          .POST(HttpRequest.BodyPublishers.ofString(completionBody("Long story", 4000, ",\"stream\":true")))
          .build(), HttpResponse.BodyHandlers.ofInputStream());
      assertEquals(200, r.statusCode());
      try (InputStream in = r.body()) {
        String some = new String(in.readNBytes(600), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(some.startsWith("data: {"), some);
        assertFalse(some.contains("[DONE]"), "the stream ended before the client left");
        assertTrue(own.loop.metrics().kvPagesUsedDevice() > 0, "no pages in use while streaming");
      }
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      LoopMetrics m = own.loop.metrics();
      while ((m.kvPagesUsedDevice() > 0 || m.running() > 0) && System.nanoTime() < deadline) {
        Thread.sleep(20);
        m = own.loop.metrics();
      }
      assertEquals(0, m.kvPagesUsedDevice(), "pages still used after the client left: " + m);
      assertEquals(0, m.running());
      assertEquals(1, m.requestsCancelled(), "the request ran to its end instead of being cancelled: " + m);
      assertTrue(m.generationTokens() < 4000, m.toString());
    }
  }

  @Test
  void sixtyFourConcurrentStreams() throws Exception {
    int clients = 64;
    List<GenerationRequest> requests = new ArrayList<>();
    for (int i = 0; i < clients; ++i) {
      requests.add(GenerationRequest.of(ref.encode("client " + i + " says"), 8, SamplingParams.greedy())
          .withIgnoreEos(true));
    }
    List<GenerationResult> want = ref.generateAll(requests, null);
    long start = System.nanoTime();
    List<CompletableFuture<HttpResponse<String>>> futures = new ArrayList<>();
    for (int i = 0; i < clients; ++i) {
      futures.add(fx.client.sendAsync(HttpRequest.newBuilder(fx.uri("/v1/completions"))
          .POST(HttpRequest.BodyPublishers.ofString(completionBody("client " + i + " says", 8, ",\"stream\":true")))
          .build(), HttpResponse.BodyHandlers.ofString()));
    }
    for (int i = 0; i < clients; ++i) {
      HttpResponse<String> r = futures.get(i).get(180, TimeUnit.SECONDS);
      assertEquals(200, r.statusCode(), r.body());
      StringBuilder text = new StringBuilder();
      for (JsonNode e : ServerFixture.sse(r.body())) {
        text.append(e.at("/choices/0/text").asText());
      }
      assertEquals(want.get(i).text(), text.toString(), "client " + i);
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    assertTrue(seconds < 180, "64 streams took " + seconds + " s");
  }

  private static final Pattern SAMPLE = Pattern.compile(
      "([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\]|\\\\.)*\",?)*\\})? "
          + "(-?[0-9.eE+-]+|NaN|[+-]Inf)");

  static Map<String, Double> metrics() throws Exception {
    HttpResponse<String> r = fx.get("/metrics");
    assertEquals(200, r.statusCode());
    assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"));
    Map<String, Double> values = new HashMap<>();
    for (String line : r.body().split("\n")) {
      if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
        continue;
      }
      Matcher m = SAMPLE.matcher(line);
      assertTrue(m.matches(), "not a Prometheus sample line: " + line);
      values.put(line.substring(0, line.lastIndexOf(' ')), Double.parseDouble(m.group(4).replace("Inf",
          "Infinity")));
    }
    return values;
  }

  private static double find(Map<String, Double> values, String prefix) {
    return values.entrySet().stream().filter(e -> e.getKey().startsWith(prefix)).mapToDouble(Map.Entry::getValue)
        .findFirst().orElseThrow(() -> new AssertionError("no metric " + prefix + " in " + values.keySet()));
  }

  @Test
  void metricsMove() throws Exception {
    Map<String, Double> before = metrics();
    for (String name : List.of("kvasir:num_requests_running{", "kvasir:num_requests_waiting{",
        "kvasir:kv_cache_usage_perc{", "kvasir:prefix_cache_queries_total{", "kvasir:prefix_cache_hits_total{",
        "kvasir:num_preemptions_total{", "kvasir:time_to_first_token_seconds_bucket{",
        "kvasir:inter_token_latency_seconds_sum{", "kvasir:e2e_request_latency_seconds_count{")) {
      find(before, name);
    }
    assertEquals(200, fx.post("/v1/completions", completionBody("count me", 5, "")).statusCode());
    Map<String, Double> after = metrics();
    assertTrue(find(after, "kvasir:generation_tokens_total{") >= find(before, "kvasir:generation_tokens_total{") + 5);
    assertTrue(find(after, "kvasir:prompt_tokens_total{") > find(before, "kvasir:prompt_tokens_total{"));
    assertTrue(find(after, "kvasir:e2e_request_latency_seconds_count{") > find(before,
        "kvasir:e2e_request_latency_seconds_count{"));
    assertTrue(find(after, "kvasir:prefix_cache_queries_total{") > find(before, "kvasir:prefix_cache_queries_total{"));
  }

  @Test
  void modelsAndHealth() throws Exception {
    HttpResponse<String> m = fx.get("/v1/models");
    assertEquals(200, m.statusCode());
    JsonNode o = ServerFixture.json(m.body());
    assertEquals("list", o.get("object").asText());
    assertEquals("tiny:llama", o.at("/data/0/id").asText());
    assertEquals("model", o.at("/data/0/object").asText());
    HttpResponse<String> h = fx.get("/health");
    assertEquals(200, h.statusCode());
    assertEquals(405, fx.get("/v1/completions").statusCode());
  }

  @Test
  void stopDrainsAndRefuses() throws Exception {
    ServerFixture own = new ServerFixture(2, 4, 8, 1 << 20);
    CompletableFuture<HttpResponse<String>> running = own.client.sendAsync(HttpRequest.newBuilder(
        own.uri("/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(completionBody("drain", 20,
            ",\"stream\":true"))).build(), HttpResponse.BodyHandlers.ofString());
    Thread.sleep(200);
    own.server.stop(java.time.Duration.ofSeconds(30));
    HttpResponse<String> r = running.get(60, TimeUnit.SECONDS);
    assertEquals(200, r.statusCode());
    List<JsonNode> events = ServerFixture.sse(r.body());
    assertEquals("length", events.get(events.size() - 1).at("/choices/0/finish_reason").asText());
    assertThrows(java.net.ConnectException.class, () -> own.get("/health"), "the listener is still open");
  }
}
