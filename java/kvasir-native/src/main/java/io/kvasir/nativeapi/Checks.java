package io.kvasir.nativeapi;

/**
 * Argument checks shared by {@link Stream} and {@link Ops}: they run before native code and throw
 * {@link IllegalArgumentException} naming the argument, so a wrong size never reaches a kernel as
 * an out-of-bounds access (the library cannot see buffer extents behind a raw pointer).
 */
final class Checks {
  private Checks() {}

  /** Product of non-negative dimensions, or IllegalArgumentException naming the overflowing shape. */
  static long elements(String what, long... dims) {
    long n = 1;
    for (long d : dims) {
      try {
        n = Math.multiplyExact(n, d);
      } catch (ArithmeticException e) {
        throw new IllegalArgumentException(what + " has more elements than fit in a long", e);
      }
    }
    return n;
  }

  static void nonNegative(String name, long value) {
    if (value < 0) {
      throw new IllegalArgumentException(name + "=" + value + " must be >= 0");
    }
  }

  /**
   * Address of a tensor of {@code count} elements of {@code elementBytes} that a kernel on the
   * stream reads or writes: the buffer must be open, be stream memory for the stream's backend
   * and hold the tensor between the view's offset and its end.
   */
  static long tensor(Stream stream, BufferView view, String name, long count, int elementBytes) {
    if (view == null) {
      throw new IllegalArgumentException(name + " is null");
    }
    Buffer buffer = view.buffer();
    requireKernelMemory(stream, buffer, name);
    long offset = view.offset();
    long capacity = buffer.capacity(elementBytes);
    if (offset < 0 || offset > capacity - count) {
      throw new IllegalArgumentException(name + " needs " + count + " elements of " + elementBytes + " bytes from element "
          + offset + " but " + buffer + " holds " + capacity + " of them");
    }
    return buffer.address() + offset * elementBytes;
  }

  /** Like {@link #tensor} for an optional tensor: null gives address 0 (NULL). */
  static long optionalTensor(Stream stream, BufferView view, String name, long count, int elementBytes) {
    return view == null ? 0 : tensor(stream, view, name, count, elementBytes);
  }

  /**
   * Kernels read "stream memory": any host memory on the CPU backend; on CUDA, device memory of
   * the stream's device or pinned (mapped) host memory. Plain host memory is not readable by a
   * CUDA kernel.
   */
  static void requireKernelMemory(Stream stream, Buffer buffer, String name) {
    buffer.handle(); // closed buffers fail here, naming the class
    boolean ok;
    if (stream.backend() == Backend.CPU) {
      ok = buffer.isHostAccessible();
    } else {
      ok = buffer.backend() == Backend.CUDA
          && (buffer.tier() == MemoryTier.PINNED_HOST
              || (buffer.tier() == MemoryTier.DEVICE && buffer.device() == stream.device()));
    }
    if (!ok) {
      throw new IllegalArgumentException(name + " is " + buffer + ", which a kernel on " + stream + " cannot address");
    }
  }

  /**
   * Copies (memcpy) reach a little further than kernels: on CUDA also plain host memory (copied
   * synchronously by the library).
   */
  static void requireCopyMemory(Stream stream, Buffer buffer, String name) {
    buffer.handle();
    boolean ok;
    if (stream.backend() == Backend.CPU) {
      ok = buffer.isHostAccessible();
    } else {
      ok = buffer.isHostAccessible() || buffer.device() == stream.device();
    }
    if (!ok) {
      throw new IllegalArgumentException(name + " is " + buffer + ", which " + stream + " cannot copy");
    }
  }

  /** Byte range [offset, offset + bytes) inside the buffer, or IllegalArgumentException naming it. */
  static void byteRange(Buffer buffer, String name, long offsetBytes, long bytes) {
    if (offsetBytes < 0 || bytes < 0 || offsetBytes > buffer.sizeBytes() - bytes) {
      throw new IllegalArgumentException(name + " range [" + offsetBytes + ", " + (offsetBytes + bytes)
          + ") bytes is outside " + buffer);
    }
  }
}
