package io.kvasir.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpExchange;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/** Reading bodies and writing whole responses of {@link HttpExchange}s. */
final class Exchanges {
  private Exchanges() {}

  /**
   * The body, at most {@code limitBytes}.
   *
   * @throws ApiException 413 when the body (declared or read) is larger
   */
  static byte[] readBody(HttpExchange exchange, long limitBytes) throws IOException {
    String declared = exchange.getRequestHeaders().getFirst("Content-Length");
    if (declared != null) {
      long length;
      try {
        length = Long.parseLong(declared.trim());
      } catch (NumberFormatException e) {
        throw ApiException.invalid(null, "Content-Length \"" + declared + "\" is not a number");
      }
      if (length > limitBytes) {
        throw tooLarge(limitBytes);
      }
    }
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    byte[] buf = new byte[8192];
    try (InputStream in = exchange.getRequestBody()) {
      int read;
      while ((read = in.read(buf)) >= 0) {
        if (body.size() + (long) read > limitBytes) {
          throw tooLarge(limitBytes);
        }
        body.write(buf, 0, read);
      }
    }
    return body.toByteArray();
  }

  private static ApiException tooLarge(long limitBytes) {
    return new ApiException(413, "invalid_request_error", "the request body is larger than " + limitBytes
        + " bytes (--max-body-bytes)", null, "request_too_large");
  }

  static JsonNode parseJson(byte[] body) {
    try {
      return Json.MAPPER.readTree(body);
    } catch (IOException e) {
      String detail = e.getMessage() == null ? "" : e.getMessage().lines().findFirst().orElse("");
      throw ApiException.invalid(null, "the request body is not valid JSON: " + detail, "invalid_json");
    }
  }

  static void sendJson(HttpExchange exchange, int status, JsonNode body) throws IOException {
    send(exchange, status, "application/json", Json.bytes(body));
  }

  static void sendError(HttpExchange exchange, ApiException e) throws IOException {
    if (e.status() == 429) {
      exchange.getResponseHeaders().set("Retry-After", "1");
    }
    sendJson(exchange, e.status(), ErrorBody.of(e));
  }

  static void sendText(HttpExchange exchange, int status, String contentType, String text) throws IOException {
    send(exchange, status, contentType, text.getBytes(StandardCharsets.UTF_8));
  }

  private static void send(HttpExchange exchange, int status, String contentType, byte[] body) throws IOException {
    exchange.getResponseHeaders().set("Content-Type", contentType);
    boolean head = "HEAD".equals(exchange.getRequestMethod());
    exchange.sendResponseHeaders(status, head ? -1 : body.length == 0 ? -1 : body.length);
    if (!head && body.length > 0) {
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    }
  }
}
