package io.kvasir.nativeapi;

import java.util.Objects;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.bytedeco.javacpp.Pointer;

/**
 * Memory on one tier of a backend's device ({@code kv_buffer_t}). Contents start undefined.
 *
 * <p>Host-accessible buffers (every tier of the CPU backend, and the pinned and plain host tiers
 * of CUDA) can be read and written from Java with the {@code put}/{@code get} helpers; indices
 * and lengths are in elements of the array's type. Device memory is reached through a
 * {@link Stream} ({@link Stream#upload}, {@link Stream#download}, {@link Stream#memcpy}).
 *
 * <p>Host helpers do not synchronize: finish stream work that writes or reads the buffer first.
 */
public final class Buffer extends NativeHandle implements BufferView {
  private static final Logger LOG = LogManager.getLogger(Buffer.class);

  private final Backend backend;
  private final int device;
  private final MemoryTier tier;
  private final long sizeBytes;
  private final long address;

  private Buffer(KvasirLibrary.kv_buffer handle, Backend backend, int device, MemoryTier tier, long sizeBytes,
      long address) {
    super(handle, "Buffer(" + backend + ":" + device + " " + tier + ", " + sizeBytes + " bytes)");
    this.backend = backend;
    this.device = device;
    this.tier = tier;
    this.sizeBytes = sizeBytes;
    this.address = address;
  }

  /**
   * Allocates {@code sizeBytes} (&gt; 0) on a tier of a backend's device. On the CPU backend every
   * tier is host memory; the library's per-tier counters still tell them apart.
   *
   * @throws KvasirException {@link Status#INVALID_ARGUMENT} for a bad size or device,
   *     {@link Status#NO_DEVICE} without such a device, {@link Status#OUT_OF_MEMORY}
   */
  public static Buffer allocate(Backend backend, int device, MemoryTier tier, long sizeBytes) {
    Objects.requireNonNull(backend, "backend");
    Objects.requireNonNull(tier, "tier");
    Kvasir.ensureLoaded();
    KvasirLibrary.kv_buffer out = new KvasirLibrary.kv_buffer();
    KvasirException.check(KvasirLibrary.kv_buffer_init(backend.code(), device, tier.code(), sizeBytes, out));
    // Read back what the library recorded rather than trusting the request.
    Buffer buffer = new Buffer(out, Backend.fromCode(KvasirLibrary.kv_buffer_backend(out)), device,
        MemoryTier.fromCode(KvasirLibrary.kv_buffer_tier(out)), KvasirLibrary.kv_buffer_size_bytes(out),
        KvasirLibrary.kv_buffer_data(out));
    LOG.debug("allocated {}", buffer);
    return buffer;
  }

  /** Allocates plain host memory of the CPU backend. */
  public static Buffer host(long sizeBytes) {
    return allocate(Backend.CPU, 0, MemoryTier.HOST, sizeBytes);
  }

  @Override
  void free(Pointer handle) {
    KvasirLibrary.kv_buffer_free((KvasirLibrary.kv_buffer) handle);
  }

  KvasirLibrary.kv_buffer nativeHandle() {
    return (KvasirLibrary.kv_buffer) handle();
  }

  @Override
  public Buffer buffer() {
    return this;
  }

  /** 0: a Buffer used as a {@link BufferView} starts at its first element. */
  @Override
  public long offset() {
    return 0;
  }

  /** A view of this buffer starting {@code offset} elements in (of the dtype it is read as). */
  public BufferView at(long offset) {
    return new BufferSlice(this, offset);
  }

  public Backend backend() {
    return backend;
  }

  public int device() {
    return device;
  }

  public MemoryTier tier() {
    return tier;
  }

  public long sizeBytes() {
    return sizeBytes;
  }

  /**
   * The address usable by streams of this buffer's backend (for pinned memory the host address,
   * mapped for the device).
   *
   * @throws IllegalStateException once closed
   */
  public long address() {
    handle();
    return address;
  }

  /** Whether Java can read and write the memory directly (host memory of any backend). */
  public boolean isHostAccessible() {
    return backend == Backend.CPU || tier != MemoryTier.DEVICE;
  }

  /** Elements of {@code elementBytes} bytes that fit in the buffer. */
  public long capacity(int elementBytes) {
    return sizeBytes / elementBytes;
  }

  // ---------------------------------------------------------------- host access

  public void put(long index, float[] src) {
    put(index, src, 0, src.length);
  }

  public void put(long index, float[] src, int from, int length) {
    Objects.checkFromIndexSize(from, length, src.length);
    HostMemory.put(hostAddress(index, length, Float.BYTES), src, from, length);
  }

  public void get(long index, float[] dst) {
    get(index, dst, 0, dst.length);
  }

  public void get(long index, float[] dst, int from, int length) {
    Objects.checkFromIndexSize(from, length, dst.length);
    HostMemory.get(hostAddress(index, length, Float.BYTES), dst, from, length);
  }

  /** Writes 16-bit elements, such as bf16 bit patterns. */
  public void put(long index, short[] src) {
    put(index, src, 0, src.length);
  }

  public void put(long index, short[] src, int from, int length) {
    Objects.checkFromIndexSize(from, length, src.length);
    HostMemory.put(hostAddress(index, length, Short.BYTES), src, from, length);
  }

  public void get(long index, short[] dst) {
    get(index, dst, 0, dst.length);
  }

  public void get(long index, short[] dst, int from, int length) {
    Objects.checkFromIndexSize(from, length, dst.length);
    HostMemory.get(hostAddress(index, length, Short.BYTES), dst, from, length);
  }

  /** Writes 64-bit elements, such as page indices. */
  public void put(long index, long[] src) {
    put(index, src, 0, src.length);
  }

  public void put(long index, long[] src, int from, int length) {
    Objects.checkFromIndexSize(from, length, src.length);
    HostMemory.put(hostAddress(index, length, Long.BYTES), src, from, length);
  }

  public void get(long index, long[] dst) {
    get(index, dst, 0, dst.length);
  }

  public void get(long index, long[] dst, int from, int length) {
    Objects.checkFromIndexSize(from, length, dst.length);
    HostMemory.get(hostAddress(index, length, Long.BYTES), dst, from, length);
  }

  public void put(long index, byte[] src) {
    put(index, src, 0, src.length);
  }

  public void put(long index, byte[] src, int from, int length) {
    Objects.checkFromIndexSize(from, length, src.length);
    HostMemory.put(hostAddress(index, length, 1), src, from, length);
  }

  public void get(long index, byte[] dst) {
    get(index, dst, 0, dst.length);
  }

  public void get(long index, byte[] dst, int from, int length) {
    Objects.checkFromIndexSize(from, length, dst.length);
    HostMemory.get(hostAddress(index, length, 1), dst, from, length);
  }

  /**
   * The address of element {@code index} after checking that {@code count} elements of
   * {@code elementBytes} fit and that Java may touch the memory.
   */
  private long hostAddress(long index, long count, int elementBytes) {
    long base = address();
    if (!isHostAccessible()) {
      throw new IllegalStateException(this + " is device memory and not host-accessible;"
          + " use Stream.upload/download or memcpy through a host buffer");
    }
    checkRange(index, count, elementBytes);
    return base + index * elementBytes;
  }

  /** Throws IndexOutOfBoundsException unless elements [index, index + count) fit. */
  void checkRange(long index, long count, int elementBytes) {
    long capacity = sizeBytes / elementBytes;
    if (index < 0 || count < 0 || index > capacity - count) {
      throw new IndexOutOfBoundsException("elements [" + index + ", " + (index + count) + ") of " + elementBytes
          + " bytes are outside " + this + ", which holds " + capacity + " of them");
    }
  }

  @Override
  public String toString() {
    return "Buffer(" + backend + ":" + device + " " + tier + ", " + sizeBytes + " bytes" + (isClosed() ? ", closed)" : ")");
  }
}
