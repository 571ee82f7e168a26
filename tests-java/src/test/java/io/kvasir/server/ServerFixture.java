package io.kvasir.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.engine.Engine;
import io.kvasir.engine.EngineLoop;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.policy.Policy;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** A server on loopback over tiny:llama (CPU), and an HTTP/1.1 client for it. */
final class ServerFixture implements AutoCloseable {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String MODEL = "tiny:llama";

  final Engine engine;
  final EngineLoop loop;
  final OpenAiServer server;
  final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .connectTimeout(Duration.ofSeconds(10)).build();

  ServerFixture(int maxBatch, int maxWaiting, int threads, long maxBodyBytes) throws IOException {
    this(engine(maxBatch, 160), maxWaiting, threads, maxBodyBytes);
  }

  ServerFixture(Engine engine, int maxWaiting, int threads, long maxBodyBytes) throws IOException {
    this.engine = engine;
    loop = EngineLoop.start(engine, maxWaiting);
    server = OpenAiServer.start(loop, new ServedModel(MODEL, engine, Policy.parse("full")), "127.0.0.1", 0, threads,
        maxBodyBytes, true);
  }

  /** The engine configuration of every fixture (the reference engine of the tests too). */
  static Engine engine(int maxBatch, int maxContext) {
    return Engine.builder().setModel(MODEL).optDevice(Backend.CPU, 0).optDtype(DType.BF16).optMaxContext(maxContext)
        .optMaxBatch(maxBatch).optMaxStepTokens(64).optPageTokens(8).optPolicy("full").build();
  }

  URI uri(String path) {
    return URI.create("http://127.0.0.1:" + server.port() + path);
  }

  HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
    return client.send(HttpRequest.newBuilder(uri(path)).timeout(Duration.ofSeconds(120))
        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
  }

  HttpResponse<String> get(String path) throws IOException, InterruptedException {
    return client.send(HttpRequest.newBuilder(uri(path)).timeout(Duration.ofSeconds(30)).GET().build(),
        HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
  }

  static JsonNode json(String text) throws IOException {
    return JSON.readTree(text);
  }

  /**
   * The events of an SSE body, parsed strictly: every event is exactly {@code data: <payload>\n\n},
   * the last payload is {@code [DONE]} and nothing follows it. Returns the JSON payloads before it.
   */
  static List<JsonNode> sse(String body) throws IOException {
    List<JsonNode> events = new ArrayList<>();
    int at = 0;
    boolean done = false;
    while (at < body.length()) {
      if (done) {
        fail("bytes after data: [DONE]: " + body.substring(at));
      }
      if (!body.startsWith("data: ", at)) {
        fail("an event does not start with 'data: ' at " + at + ": " + body.substring(at, Math.min(body.length(),
            at + 80)));
      }
      int end = body.indexOf("\n\n", at);
      assertTrue(end > 0, "an event without its blank line");
      String payload = body.substring(at + "data: ".length(), end);
      assertEquals(-1, payload.indexOf('\n'), "a payload spans lines");
      if (payload.equals("[DONE]")) {
        done = true;
      } else {
        events.add(JSON.readTree(payload));
      }
      at = end + 2;
    }
    assertTrue(done, "the stream did not end with data: [DONE]");
    return events;
  }

  @Override
  public void close() {
    server.stop(Duration.ofSeconds(5));
  }
}
