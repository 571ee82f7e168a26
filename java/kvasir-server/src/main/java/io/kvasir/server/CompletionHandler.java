package io.kvasir.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import io.kvasir.engine.EngineLoop;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.RequestHandle;
import io.kvasir.engine.TokenLogprobs;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * {@code POST /v1/completions} and {@code /v1/chat/completions}: parse, submit to the loop,
 * answer with one JSON object or a Server-Sent Events stream. Runs on an HTTP worker thread,
 * which waits for the request's events; a failed write cancels the request, so a client that
 * goes away frees its KV pages at the loop's next step.
 */
final class CompletionHandler {
  private static final Logger LOG = LogManager.getLogger(CompletionHandler.class);
  private static final byte[] DONE = "data: [DONE]\n\n".getBytes(StandardCharsets.US_ASCII);

  private final EngineLoop loop;
  private final ServedModel served;
  private final RequestParser parser;

  CompletionHandler(EngineLoop loop, ServedModel served) {
    this.loop = loop;
    this.served = served;
    this.parser = new RequestParser(served);
  }

  /** Handles one request whose body is read; throws ApiException before any byte is sent. */
  void handle(HttpExchange exchange, JsonNode body, boolean chat) throws IOException, InterruptedException {
    ParsedRequest p = parser.parse(body, chat);
    GenerationRequest request = p.logprobs() ? p.request().withLogprobs(p.topLogprobs()) : p.request();
    RequestEvents events = new RequestEvents();
    RequestHandle handle = submit(request, p, events);
    Responses responses = new Responses(chat, (chat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID().toString()
        .replace("-", ""), System.currentTimeMillis() / 1000, served.id());
    try {
      if (p.stream()) {
        stream(exchange, p, events, responses, handle);
      } else {
        Exchanges.sendJson(exchange, 200, collect(p, events, responses));
      }
    } finally {
      if (!handle.isDone()) {
        handle.cancel();  // a failed write, an interrupt, a bug: free the pages now
      }
    }
  }

  private RequestHandle submit(GenerationRequest request, ParsedRequest p, RequestEvents events) {
    try {
      return loop.submit(request, p.n(), events);
    } catch (RejectedExecutionException e) {
      throw new ApiException(429, "rate_limit_error", "the server's queue is full; retry later", null,
          "rate_limit_exceeded");
    } catch (IllegalStateException e) {
      throw new ApiException(503, "server_error", "the server is shutting down", null, "shutting_down");
    } catch (IllegalArgumentException e) {
      String msg = e.getMessage() == null ? "invalid request" : e.getMessage();
      String param = msg.startsWith("n=") || msg.contains(" n ") ? "n" : p.chat() ? "messages" : "prompt";
      throw ApiException.invalid(param, msg);
    }
  }

  /** Per sample: the text so far, tokens, logprobs and how it ended. */
  private static final class Sample {
    final StringBuilder text = new StringBuilder();
    final List<TokenLogprobs> logprobs = new ArrayList<>();
    GenerationResult result;
  }

  private ObjectNode collect(ParsedRequest p, RequestEvents events, Responses responses) throws InterruptedException {
    Sample[] samples = samples(p.n());
    int finished = 0;
    while (finished < p.n()) {
      RequestEvents.Event e = events.poll(1, TimeUnit.SECONDS);
      if (e instanceof RequestEvents.Token t) {
        Sample s = samples[t.sample()];
        if (t.textDelta() != null) {
          s.text.append(t.textDelta());
        }
        if (t.logprobs() != null) {
          s.logprobs.add(t.logprobs());
        }
      } else if (e instanceof RequestEvents.Finish f) {
        samples[f.sample()].result = f.result();
        ++finished;
      } else if (e instanceof RequestEvents.Failure failure) {
        throw engineFailure(failure.error());
      }
    }
    ArrayNode choices = Json.MAPPER.createArrayNode();
    int completionTokens = 0;
    for (int i = 0; i < samples.length; ++i) {
      GenerationResult r = samples[i].result;
      completionTokens += r.tokens().length;
      String text = r.text() != null ? r.text() : samples[i].text.toString();
      choices.add(responses.choice(i, text, r.finishReason().openAiName(),
          p.logprobs() ? responses.logprobs(samples[i].logprobs, 0) : null));
    }
    return responses.response(choices, Responses.usage(p.promptTokens(), completionTokens,
        samples[0].result.stats().cachedPromptTokens()));
  }

  private void stream(HttpExchange exchange, ParsedRequest p, RequestEvents events, Responses responses,
      RequestHandle handle) throws IOException, InterruptedException {
    exchange.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
    exchange.getResponseHeaders().set("Cache-Control", "no-cache");
    exchange.getResponseHeaders().set("X-Accel-Buffering", "no");
    exchange.sendResponseHeaders(200, 0);
    Sample[] samples = samples(p.n());
    boolean usageField = p.includeUsage();
    try (OutputStream out = exchange.getResponseBody()) {
      if (p.chat()) {
        for (int i = 0; i < p.n(); ++i) {
          write(out, responses.chunk(i, "assistant", "", null, null, usageField));
        }
        out.flush();
      }
      int finished = 0;
      while (finished < p.n()) {
        RequestEvents.Event e = events.poll(1, TimeUnit.SECONDS);
        // Write every event already queued before one flush: a chunk per token, a syscall per batch.
        for (; e != null; e = events.pollNow()) {
          if (e instanceof RequestEvents.Token t) {
            Sample s = samples[t.sample()];
            String delta = t.textDelta() == null ? "" : t.textDelta();
            int offset = s.text.length();
            s.text.append(delta);
            if (!delta.isEmpty() || t.logprobs() != null) {
              write(out, responses.chunk(t.sample(), null, delta, null, t.logprobs() == null ? null
                  : responses.logprobs(List.of(t.logprobs()), offset), usageField));
            }
          } else if (e instanceof RequestEvents.Finish f) {
            ++finished;
            samples[f.sample()].result = f.result();
            String rest = remainder(samples[f.sample()].text, f.result().text());
            write(out, responses.chunk(f.sample(), null, rest.isEmpty() ? (p.chat() ? null : "") : rest,
                f.result().finishReason().openAiName(), null, usageField));
          } else if (e instanceof RequestEvents.Failure failure) {
            ApiException error = engineFailure(failure.error());
            write(out, ErrorBody.of(error));
            out.write(DONE);
            return;
          }
        }
        out.flush();
      }
      if (p.includeUsage()) {
        int completionTokens = 0;
        for (Sample s : samples) {
          completionTokens += s.result.tokens().length;
        }
        write(out, responses.usageChunk(Responses.usage(p.promptTokens(), completionTokens,
            samples[0].result.stats().cachedPromptTokens())));
      }
      out.write(DONE);
    } catch (IOException e) {
      LOG.debug("request {}: the client went away mid-stream ({}); cancelling", responses.id(), e.toString());
      handle.cancel();
    }
  }

  // Text of the result beyond what the deltas carried (held-back text flushed at the end).
  private static String remainder(StringBuilder streamed, String finalText) {
    if (finalText == null || finalText.length() <= streamed.length()
        || !finalText.startsWith(streamed.toString())) {
      return "";
    }
    String rest = finalText.substring(streamed.length());
    streamed.append(rest);
    return rest;
  }

  private static void write(OutputStream out, JsonNode chunk) throws IOException {
    out.write("data: ".getBytes(StandardCharsets.US_ASCII));
    out.write(Json.bytes(chunk));
    out.write("\n\n".getBytes(StandardCharsets.US_ASCII));
  }

  private static Sample[] samples(int n) {
    Sample[] samples = new Sample[n];
    for (int i = 0; i < n; ++i) {
      samples[i] = new Sample();
    }
    return samples;
  }

  private static ApiException engineFailure(Throwable error) {
    LOG.warn("a request failed in the engine", error);
    return new ApiException(500, "server_error", "the engine failed on this request: " + error, null,
        "engine_error");
  }
}
