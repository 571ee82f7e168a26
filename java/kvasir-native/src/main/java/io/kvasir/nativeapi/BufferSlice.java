package io.kvasir.nativeapi;

import java.util.Objects;

/** A {@link BufferView} at an element offset other than 0; made by {@link Buffer#at(long)}. */
record BufferSlice(Buffer buffer, long offset) implements BufferView {
  BufferSlice {
    Objects.requireNonNull(buffer, "buffer");
    if (offset < 0) {
      throw new IllegalArgumentException("offset=" + offset + " must be >= 0");
    }
  }
}
