package io.kvasir.server;

import com.fasterxml.jackson.databind.node.ObjectNode;

/** OpenAI's error object: {@code {"error": {"message", "type", "param", "code"}}}. */
final class ErrorBody {
  private ErrorBody() {}

  static ObjectNode of(ApiException e) {
    return of(e.getMessage(), e.type(), e.param(), e.code());
  }

  static ObjectNode of(String message, String type, String param, String code) {
    ObjectNode root = Json.MAPPER.createObjectNode();
    ObjectNode error = root.putObject("error");
    error.put("message", message);
    error.put("type", type);
    error.put("param", param);
    error.put("code", code);
    return root;
  }
}
