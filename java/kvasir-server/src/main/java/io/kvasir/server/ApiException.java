package io.kvasir.server;

/**
 * A request the server answers with an OpenAI-style error object instead of a result.
 *
 * @see ErrorBody
 */
final class ApiException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int status;
  private final String type;
  private final String param;  // the request field at fault, or null
  private final String code;   // a machine-readable reason, or null

  ApiException(int status, String type, String message, String param, String code) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  /** 400 invalid_request_error naming the field. */
  static ApiException invalid(String param, String message) {
    return new ApiException(400, "invalid_request_error", message, param, null);
  }

  static ApiException invalid(String param, String message, String code) {
    return new ApiException(400, "invalid_request_error", message, param, code);
  }

  int status() {
    return status;
  }

  String type() {
    return type;
  }

  String param() {
    return param;
  }

  String code() {
    return code;
  }
}
