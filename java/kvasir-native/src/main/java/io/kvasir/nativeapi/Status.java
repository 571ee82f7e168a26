package io.kvasir.nativeapi;

import java.util.Optional;

/** Mirrors {@code kv_status}. Values are append-only in the C ABI, so unknown codes can arrive. */
public enum Status {
  OK(0),
  /** A NULL handle, a bad shape, a value out of range. */
  INVALID_ARGUMENT(1),
  /** An allocation on some tier failed. */
  OUT_OF_MEMORY(2),
  /** A valid request that this build or backend does not do. */
  UNSUPPORTED(3),
  /** Backend not compiled in, no driver, or no such device. */
  NO_DEVICE(4),
  /** The CUDA runtime reported an error. */
  DEVICE_ERROR(5),
  /** A bug in Kvasir. */
  INTERNAL(6);

  private final int code;

  Status(int code) {
    this.code = code;
  }

  /** The {@code kv_status} value. */
  public int code() {
    return code;
  }

  /** The C name, e.g. {@code KV_STATUS_INVALID_ARGUMENT}. */
  public String cName() {
    return "KV_STATUS_" + name();
  }

  /** The status with this code, or empty for a code newer than these bindings. */
  public static Optional<Status> fromCode(int code) {
    for (Status s : values()) {
      if (s.code == code) {
        return Optional.of(s);
      }
    }
    return Optional.empty();
  }
}
