package io.kvasir.model;

import io.kvasir.nativeapi.Kvasir;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import org.bytedeco.javacpp.BytePointer;

/**
 * One tensor of a memory-mapped safetensors file: its name, dtype, shape and a read-only view
 * of its bytes (row-major, little-endian) inside the mapping. Nothing is copied.
 *
 * <p>Lifetime: the bytes stay mapped while this view (or a buffer from {@link #data()}) is
 * reachable; Java unmaps a mapping only when the garbage collector frees its last buffer. A
 * native consumer of {@link #address()} must therefore keep the view reachable until it has
 * finished reading, e.g. with {@link java.lang.ref.Reference#reachabilityFence} after the native
 * call that copies the weights.
 *
 * <p>Alignment: safetensors places tensors back to back after the header (whose length is padded
 * to a multiple of 8), so a tensor's data is only as aligned as the sum of the byte sizes of the
 * tensors before it: a bf16 tensor with an odd element count misaligns every later one to 2
 * bytes. {@link #address()} is not guaranteed to be more than {@code dtype().byteSize()}-aligned
 * (and not even that for a hand-made file); native readers must use unaligned loads or copy.
 */
public final class TensorView {
  private final Path file;
  private final String name;
  private final TensorDType dtype;
  private final long[] shape;
  private final long fileOffset;
  private final ByteBuffer data; // read-only, little-endian, position 0, limit = byteSize

  TensorView(Path file, String name, TensorDType dtype, long[] shape, long fileOffset, ByteBuffer data) {
    this.file = file;
    this.name = name;
    this.dtype = dtype;
    this.shape = shape.clone();
    this.fileOffset = fileOffset;
    this.data = data.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
  }

  /** The Hugging Face tensor name ({@code model.layers.0.self_attn.q_proj.weight}). */
  public String name() {
    return name;
  }

  public TensorDType dtype() {
    return dtype;
  }

  /** The dimensions, outermost first (a copy). A linear layer's weight is [out_features, in_features]. */
  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  /** Number of elements: the product of the dimensions (1 for a scalar). */
  public long elementCount() {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  /** Bytes of data: {@code elementCount() * dtype().byteSize()}. */
  public long byteSize() {
    return data.capacity();
  }

  /** The safetensors file this tensor lives in. */
  public Path file() {
    return file;
  }

  /**
   * Where the tensor's first byte is in {@link #file()}, counted from the file's start (not from
   * the data section): lets a native reader map or {@code pread} the file itself.
   */
  public long fileOffset() {
    return fileOffset;
  }

  /**
   * A fresh read-only, little-endian view of the bytes (position 0, limit = {@link #byteSize()}).
   * Each call returns an independent buffer, so callers may move its position freely.
   */
  public ByteBuffer data() {
    return data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
  }

  /**
   * The native address of the first byte inside the memory mapping, for a native engine that
   * copies the weights to its device once. Valid while this view is reachable (see the class
   * comment). Loads libkvasir on first use: JavaCPP reads a direct buffer's address through its
   * own JNI glue, which ships inside the kvasir-native library.
   *
   * @throws IllegalStateException when the native library cannot be loaded
   */
  public long address() {
    Kvasir.ensureLoaded();
    // A Pointer made from a buffer reports the address of the buffer's position 0; ours is the
    // tensor's first byte. The BytePointer only borrows the address and is never freed.
    return new BytePointer(data).address();
  }

  @Override
  public String toString() {
    return name + " " + dtype.safetensorsName() + Arrays.toString(shape) + " in " + file.getFileName()
        + " @" + fileOffset;
  }
}
