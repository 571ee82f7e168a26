package io.kvasir.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.kvasir.ops.Bf16;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a safetensors file the way the safetensors library does: tensors back to back in the
 * given order, the JSON header padded with spaces so the data starts at a multiple of 8 bytes.
 * Values stream through a small buffer, so writing never holds a whole tensor in memory.
 */
public final class SafetensorsWriter {
  private static final int CHUNK_BYTES = 1 << 20;

  private SafetensorsWriter() {}

  /** Produces a tensor's values in row-major order, one call per element. */
  @FunctionalInterface
  public interface FloatSource {
    float next();

    /** The values of an array, in order. */
    static FloatSource of(float[] values) {
      int[] at = {0};
      return () -> values[at[0]++];
    }
  }

  /**
   * A tensor to write: values are rounded to {@code dtype} (nearest, ties to even) as they are
   * stored.
   */
  public record Tensor(String name, TensorDType dtype, long[] shape, FloatSource values) {
    public Tensor {
      shape = shape.clone();
    }

    @Override
    public long[] shape() {
      return shape.clone();
    }

    long byteSize() {
      long n = dtype.byteSize();
      for (long d : shape) {
        n = Math.multiplyExact(n, d);
      }
      return n;
    }
  }

  /**
   * Writes {@code tensors} to {@code file} (replacing it), with {@code metadata} as the header's
   * {@code __metadata__}.
   */
  public static void write(Path file, List<Tensor> tensors, Map<String, String> metadata) throws IOException {
    byte[] header = header(tensors, metadata);
    try (FileChannel out = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      ByteBuffer head = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN);
      head.putLong(header.length).put(header);
      drain(out, head);
      ByteBuffer chunk = ByteBuffer.allocate(CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
      for (Tensor t : tensors) {
        long count = t.byteSize() / t.dtype().byteSize();
        for (long i = 0; i < count; i++) {
          if (chunk.remaining() < 4) {
            drain(out, chunk);
          }
          put(chunk, t.dtype(), t.values().next());
        }
      }
      drain(out, chunk);
    }
  }

  private static void put(ByteBuffer chunk, TensorDType dtype, float v) {
    switch (dtype) {
      case F32:
        chunk.putFloat(v);
        break;
      case BF16:
        chunk.putShort(Bf16.fromFloat(v));
        break;
      case F16:
        chunk.putShort(Float16.fromFloat(v));
        break;
      default:
        throw new AssertionError(dtype);
    }
  }

  private static void drain(FileChannel out, ByteBuffer chunk) throws IOException {
    chunk.flip();
    while (chunk.hasRemaining()) {
      out.write(chunk);
    }
    chunk.clear();
  }

  /** The JSON header, space-padded so that 8 + its length is a multiple of 8. */
  static byte[] header(List<Tensor> tensors, Map<String, String> metadata) {
    Map<String, Object> json = new LinkedHashMap<>();
    if (!metadata.isEmpty()) {
      json.put("__metadata__", metadata);
    }
    Set<String> seen = new HashSet<>();
    long offset = 0;
    for (Tensor t : tensors) {
      if (!seen.add(t.name())) {
        throw new IllegalArgumentException("tensor \"" + t.name() + "\" is listed twice");
      }
      long end = offset + t.byteSize();
      Map<String, Object> entry = new LinkedHashMap<>();
      entry.put("dtype", t.dtype().safetensorsName());
      entry.put("shape", t.shape());
      entry.put("data_offsets", new long[] {offset, end});
      json.put(t.name(), entry);
      offset = end;
    }
    byte[] text;
    try {
      text = ModelConfig.strictMapper().writeValueAsString(json).getBytes(StandardCharsets.UTF_8);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot serialize a safetensors header", e);
    }
    int padded = (text.length + 7) / 8 * 8;
    byte[] out = Arrays.copyOf(text, padded);
    Arrays.fill(out, text.length, padded, (byte) ' ');
    return out;
  }
}
