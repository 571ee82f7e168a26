package io.kvasir.bench.report;

import java.nio.file.Path;

/** A record file that cannot be read: the message names the file and, where one is at fault, the field. */
public class RecordException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient Path file;

  public RecordException(Path file, String message) {
    super(file + ": " + message);
    this.file = file;
  }

  public RecordException(Path file, String message, Throwable cause) {
    super(file + ": " + message, cause);
    this.file = file;
  }

  public Path file() {
    return file;
  }
}
