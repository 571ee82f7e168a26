package io.kvasir.ops;

import io.kvasir.nativeapi.Buffer;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.MemoryTier;
import io.kvasir.nativeapi.Stream;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;

/**
 * The device buffers of one check on one stream, uploaded from and downloaded to Java arrays and
 * freed together. Values travel as doubles that are exactly representable in the tensor's dtype.
 */
final class DeviceTensors implements AutoCloseable {
  private final Stream stream;
  private final Deque<Buffer> buffers = new ArrayDeque<>();

  DeviceTensors(Stream stream) {
    this.stream = stream;
  }

  Stream stream() {
    return stream;
  }

  /** Device memory of the stream's device (host memory on the CPU backend). */
  Buffer allocate(long bytes) {
    Buffer b = Buffer.allocate(stream.backend(), stream.device(), MemoryTier.DEVICE, bytes);
    buffers.push(b);
    return b;
  }

  Buffer upload(DType dtype, double[] values) {
    Buffer b = allocate(Math.max(1, (long) values.length * dtype.byteSize()));
    if (dtype == DType.BF16) {
      stream.upload(b, 0, toBf16(values));
    } else {
      stream.upload(b, 0, toFloats(values));
    }
    return b;
  }

  Buffer upload(long[] values) {
    Buffer b = allocate(Math.max(1, (long) values.length * Long.BYTES));
    stream.upload(b, 0, values);
    return b;
  }

  Buffer upload(byte[] values) {
    Buffer b = allocate(Math.max(1, values.length));
    stream.upload(b, 0, values);
    return b;
  }

  /** A tensor filled with NaN, so an element the kernel never writes cannot pass a comparison. */
  Buffer poisoned(DType dtype, int elements) {
    double[] nan = new double[elements];
    Arrays.fill(nan, Double.NaN);
    return upload(dtype, nan);
  }

  /** Waits for the stream, then reads {@code elements} values. */
  double[] download(Buffer b, DType dtype, int elements) {
    double[] out = new double[elements];
    if (dtype == DType.BF16) {
      short[] bits = new short[elements];
      stream.download(b, 0, bits);
      for (int i = 0; i < elements; i++) {
        out[i] = Bf16.toFloat(bits[i]);
      }
    } else {
      float[] f = new float[elements];
      stream.download(b, 0, f);
      for (int i = 0; i < elements; i++) {
        out[i] = f[i];
      }
    }
    return out;
  }

  byte[] downloadBytes(Buffer b, int count) {
    byte[] out = new byte[count];
    stream.download(b, 0, out);
    return out;
  }

  static float[] toFloats(double[] values) {
    float[] out = new float[values.length];
    for (int i = 0; i < values.length; i++) {
      out[i] = (float) values[i];
    }
    return out;
  }

  static short[] toBf16(double[] values) {
    short[] out = new short[values.length];
    for (int i = 0; i < values.length; i++) {
      out[i] = Bf16.fromFloat((float) values[i]);
    }
    return out;
  }

  /** Frees every buffer; the stream is synchronized first so no queued work still uses them. */
  @Override
  public void close() {
    try {
      if (!stream.isClosed()) {
        stream.synchronize();
      }
    } finally {
      while (!buffers.isEmpty()) {
        buffers.pop().close();
      }
    }
  }
}
