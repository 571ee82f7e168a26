package io.kvasir.nativeapi;

/** Mirrors {@code kv_backend}. */
public enum Backend {
  /** Always built; one device (0), the host. */
  CPU(0),
  /** Built when nvcc was found; its devices need a driver. */
  CUDA(1);

  private final int code;

  Backend(int code) {
    this.code = code;
  }

  /** The {@code kv_backend} value. */
  public int code() {
    return code;
  }

  /** The backend with this code; an unknown code is a library newer than these bindings. */
  public static Backend fromCode(int code) {
    for (Backend b : values()) {
      if (b.code == code) {
        return b;
      }
    }
    throw new IllegalArgumentException("unknown kv_backend value " + code);
  }
}
