package io.kvasir.nativeapi;

/**
 * A libkvasir call returned a non-zero {@code kv_status}. Carries the status and the library's
 * message ({@code kv_last_error()}), which names the call, the argument and the limit it broke.
 */
public final class KvasirException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final Status status;
  private final int code;
  private final String nativeMessage;

  KvasirException(int code, String statusName, String nativeMessage) {
    super(statusName + ": " + (nativeMessage.isEmpty() ? "(libkvasir gave no message)" : nativeMessage));
    this.code = code;
    // A code newer than these bindings is still an error; INTERNAL keeps callers' switches total.
    this.status = Status.fromCode(code).orElse(Status.INTERNAL);
    this.nativeMessage = nativeMessage;
  }

  /** The status; {@link Status#INTERNAL} for a code these bindings do not know (see {@link #code()}). */
  public Status status() {
    return status;
  }

  /** The raw {@code kv_status} value. */
  public int code() {
    return code;
  }

  /** The library's message, e.g. {@code "kv_buffer_init: size_bytes must be > 0"}. */
  public String nativeMessage() {
    return nativeMessage;
  }

  /**
   * Throws for a non-zero status. Must run on the thread that made the failing call, before any
   * other call into the library, because the message is thread-local and overwritten by the next
   * failure.
   */
  static void check(int code) {
    if (code != Status.OK.code()) {
      throw fromLastError(code);
    }
  }

  static KvasirException fromLastError(int code) {
    String message = KvasirLibrary.kv_last_error();
    // Successful calls leave the old message in place; clearing it means a message seen later
    // always belongs to the call that failed then.
    KvasirLibrary.kv_clear_last_error();
    return new KvasirException(code, KvasirLibrary.kv_status_to_string(code), message == null ? "" : message);
  }
}
