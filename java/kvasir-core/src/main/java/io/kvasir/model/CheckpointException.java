package io.kvasir.model;

/**
 * A model directory that Kvasir cannot use: a missing or truncated file, a malformed or
 * inconsistent {@code config.json} or safetensors header, an unsupported architecture, dtype or
 * option, a missing tensor or one of the wrong shape. The message always names the file and the
 * field or tensor at fault, and says what was expected and what was found, so it can be shown
 * to a user as it is.
 *
 * <p>Unchecked: callers cannot recover from a bad checkpoint other than by reporting it. Plain
 * I/O failures (permissions, a disk error) stay {@link java.io.IOException}s.
 */
public class CheckpointException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public CheckpointException(String message) {
    super(message);
  }

  public CheckpointException(String message, Throwable cause) {
    super(message, cause);
  }
}
