package io.kvasir.bench.report;

import java.nio.file.Path;

/** A JSON file that is none of the record formats a report reads (a directory scan skips these; a named file is refused). */
public final class UnrecognizedRecordException extends RecordException {
  private static final long serialVersionUID = 1L;

  public UnrecognizedRecordException(Path file, String message) {
    super(file, message);
  }
}
