package io.kvasir.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.kvasir.engine.EngineLoop;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The OpenAI-compatible server: the JDK's {@link HttpServer} on a fixed pool of worker threads
 * (a streaming request holds one for its whole life), over a running {@link EngineLoop}.
 *
 * <p>{@link #stop(Duration)} drains: new requests get 503, the loop finishes what it holds
 * within the deadline (and cancels the rest), the listener closes, then the engine, if the
 * server owns it, frees all its native memory. Every exchange is answered: a bug in a handler
 * becomes a 500 with an error object, never a dead server.
 */
public final class OpenAiServer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(OpenAiServer.class);

  private final HttpServer http;
  private final ExecutorService workers;
  private final EngineLoop loop;
  private final ServedModel served;
  private final CompletionHandler completions;
  private final long maxBodyBytes;
  private final boolean ownsEngine;
  private final AtomicBoolean draining = new AtomicBoolean();
  private final AtomicBoolean stopped = new AtomicBoolean();

  private OpenAiServer(HttpServer http, ExecutorService workers, EngineLoop loop, ServedModel served,
      long maxBodyBytes, boolean ownsEngine) {
    this.http = http;
    this.workers = workers;
    this.loop = loop;
    this.served = served;
    this.completions = new CompletionHandler(loop, served);
    this.maxBodyBytes = maxBodyBytes;
    this.ownsEngine = ownsEngine;
  }

  /**
   * Binds and starts serving.
   *
   * @param port         0 picks a free port (see {@link #port()})
   * @param threads      HTTP worker threads: the most requests handled at once (streams included)
   * @param ownsEngine   whether {@link #stop} closes the engine
   */
  public static OpenAiServer start(EngineLoop loop, ServedModel served, String host, int port, int threads,
      long maxBodyBytes, boolean ownsEngine) throws IOException {
    if (threads < 1 || maxBodyBytes < 1) {
      throw new IllegalArgumentException("threads=" + threads + " and maxBodyBytes=" + maxBodyBytes + " must be >= 1");
    }
    HttpServer http = HttpServer.create(new InetSocketAddress(host, port), 1024);
    AtomicInteger n = new AtomicInteger();
    ThreadFactory factory = r -> {
      Thread t = new Thread(r, "kvasir-http-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
    ExecutorService workers = Executors.newFixedThreadPool(threads, factory);
    http.setExecutor(workers);
    OpenAiServer server = new OpenAiServer(http, workers, loop, served, maxBodyBytes, ownsEngine);
    http.createContext("/", server::exchange);
    http.start();
    LOG.info("serving {} on http://{}:{} ({} worker threads)", served.id(), host, server.port(), threads);
    return server;
  }

  public int port() {
    return http.getAddress().getPort();
  }

  /**
   * Stops gracefully: refuses new requests (503), lets the loop finish within {@code deadline}
   * (it cancels what is left), closes the listener and, when owned, the engine. Idempotent.
   */
  public void stop(Duration deadline) {
    if (!stopped.compareAndSet(false, true)) {
      return;
    }
    draining.set(true);
    LOG.info("stopping: draining the engine loop for at most {}", deadline);
    try {
      loop.shutdown(deadline);
    } catch (RuntimeException e) {
      LOG.warn("the engine loop did not shut down cleanly", e);
    }
    http.stop(1);  // seconds for the last responses to be written
    workers.shutdownNow();
    try {
      workers.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (ownsEngine) {
      served.engine().close();
    }
    LOG.info("stopped");
  }

  @Override
  public void close() {
    stop(Duration.ofSeconds(5));
  }

  private void exchange(HttpExchange exchange) {
    try (exchange) {
      try {
        route(exchange);
      } catch (ApiException e) {
        Exchanges.sendError(exchange, e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        Exchanges.sendError(exchange, new ApiException(503, "server_error", "the server is stopping", null,
            "shutting_down"));
      }
    } catch (IOException e) {
      LOG.debug("{} {}: the response could not be written: {}", exchange.getRequestMethod(),
          exchange.getRequestURI(), e.toString());
    } catch (RuntimeException | Error e) {  // a bug: answer 500 if the headers are not out yet
      LOG.error("{} {} failed", exchange.getRequestMethod(), exchange.getRequestURI(), e);
      try {
        if (exchange.getResponseCode() < 0) {
          Exchanges.sendJson(exchange, 500, ErrorBody.of("internal error: " + e, "server_error", null,
              "internal_error"));
        }
      } catch (IOException | RuntimeException ignored) {
        // the connection is gone
      }
      if (e instanceof VirtualMachineError vm) {
        throw vm;
      }
    }
  }

  private void route(HttpExchange exchange) throws IOException, InterruptedException {
    String path = exchange.getRequestURI().getPath();
    String method = exchange.getRequestMethod();
    switch (path) {
      case "/v1/completions", "/v1/chat/completions" -> {
        requireMethod(method, "POST");
        if (draining.get()) {
          throw new ApiException(503, "server_error", "the server is shutting down", null, "shutting_down");
        }
        JsonNode body = Exchanges.parseJson(Exchanges.readBody(exchange, maxBodyBytes));
        completions.handle(exchange, body, path.equals("/v1/chat/completions"));
      }
      case "/v1/models" -> {
        requireMethod(method, "GET");
        Exchanges.sendJson(exchange, 200, models());
      }
      case "/health" -> {
        requireMethod(method, "GET");
        if (draining.get()) {
          Exchanges.sendText(exchange, 503, "text/plain; charset=utf-8", "stopping\n");
        } else {
          Exchanges.sendText(exchange, 200, "text/plain; charset=utf-8", "ok\n");
        }
      }
      case "/metrics" -> {
        requireMethod(method, "GET");
        Exchanges.sendText(exchange, 200, PrometheusText.CONTENT_TYPE, MetricsPage.render(loop.metrics(),
            served.id()));
      }
      default -> throw new ApiException(404, "invalid_request_error", "no route " + method + " " + path, null,
          "not_found");
    }
  }

  private static void requireMethod(String method, String expected) {
    if (!method.equals(expected) && !(expected.equals("GET") && method.equals("HEAD"))) {
      throw new ApiException(405, "invalid_request_error", "use " + expected, null, "method_not_allowed");
    }
  }

  private ObjectNode models() {
    ObjectNode root = Json.MAPPER.createObjectNode();
    root.put("object", "list");
    ObjectNode m = root.putArray("data").addObject();
    m.put("id", served.id());
    m.put("object", "model");
    m.put("created", 0);
    m.put("owned_by", "kvasir");
    m.put("max_model_len", served.engine().maxContext());
    m.put("kvasir_policy", served.policy().spec());
    return root;
  }
}
