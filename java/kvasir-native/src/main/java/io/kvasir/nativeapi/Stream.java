package io.kvasir.nativeapi;

import java.util.Objects;
import org.bytedeco.javacpp.Pointer;

/**
 * An ordered queue of work on one device ({@code kv_stream_t}). Work on a CPU stream runs in the
 * calling thread before the call returns; on CUDA it may still run after the call returns, and
 * errors the device finds are reported by the next {@link #synchronize()}.
 *
 * <p>Offsets and sizes of the copy methods are in bytes; {@link #upload} and {@link #download}
 * take element indices of the array's type.
 */
public final class Stream extends NativeHandle {
  private final Backend backend;
  private final int device;

  private Stream(KvasirLibrary.kv_stream handle, Backend backend, int device) {
    super(handle, "Stream(" + backend + ":" + device + ")");
    this.backend = backend;
    this.device = device;
  }

  /**
   * Creates a stream on a backend's device.
   *
   * @throws KvasirException {@link Status#NO_DEVICE} when the device does not exist
   */
  public static Stream create(Backend backend, int device) {
    Objects.requireNonNull(backend, "backend");
    Kvasir.ensureLoaded();
    KvasirLibrary.kv_stream out = new KvasirLibrary.kv_stream();
    KvasirException.check(KvasirLibrary.kv_stream_init(backend.code(), device, out));
    return new Stream(out, Backend.fromCode(KvasirLibrary.kv_stream_backend(out)), KvasirLibrary.kv_stream_device(out));
  }

  /** A stream on the CPU backend's one device. */
  public static Stream cpu() {
    return create(Backend.CPU, 0);
  }

  @Override
  void free(Pointer handle) {
    KvasirLibrary.kv_stream_free((KvasirLibrary.kv_stream) handle);
  }

  KvasirLibrary.kv_stream nativeHandle() {
    return (KvasirLibrary.kv_stream) handle();
  }

  public Backend backend() {
    return backend;
  }

  public int device() {
    return device;
  }

  /** Waits for all queued work, then reports any error the device recorded for it. */
  public void synchronize() {
    KvasirException.check(KvasirLibrary.kv_stream_synchronize(nativeHandle()));
  }

  /** Makes later work on this stream wait for the work recorded by {@code event}. */
  public void waitEvent(Event event) {
    Objects.requireNonNull(event, "event");
    KvasirException.check(KvasirLibrary.kv_stream_wait_event(nativeHandle(), event.nativeHandle()));
  }

  /** Copies {@code bytes} from {@code src} at {@code srcOffsetBytes} to {@code dst} at {@code dstOffsetBytes}. */
  public void memcpy(Buffer dst, long dstOffsetBytes, Buffer src, long srcOffsetBytes, long bytes) {
    Objects.requireNonNull(dst, "dst");
    Objects.requireNonNull(src, "src");
    Checks.requireCopyMemory(this, dst, "dst");
    Checks.requireCopyMemory(this, src, "src");
    Checks.byteRange(dst, "dst", dstOffsetBytes, bytes);
    Checks.byteRange(src, "src", srcOffsetBytes, bytes);
    KvasirException.check(KvasirLibrary.kv_memcpy_async(nativeHandle(), dst.address() + dstOffsetBytes,
        src.address() + srcOffsetBytes, bytes));
  }

  /** Copies all of {@code src} to the start of {@code dst}. */
  public void memcpy(Buffer dst, Buffer src) {
    Objects.requireNonNull(src, "src");
    memcpy(dst, 0, src, 0, src.sizeBytes());
  }

  /** Sets {@code bytes} bytes of {@code dst} from {@code offsetBytes} to {@code value} (0..255). */
  public void memset(Buffer dst, long offsetBytes, int value, long bytes) {
    Objects.requireNonNull(dst, "dst");
    Checks.requireKernelMemory(this, dst, "dst");
    Checks.byteRange(dst, "dst", offsetBytes, bytes);
    KvasirException.check(KvasirLibrary.kv_memset_async(nativeHandle(), dst.address() + offsetBytes, value, bytes));
  }

  /** Sets every byte of {@code dst} to {@code value} (0..255). */
  public void memset(Buffer dst, int value) {
    Objects.requireNonNull(dst, "dst");
    memset(dst, 0, value, dst.sizeBytes());
  }

  /** Batched page copy on this stream; see {@link Ops#pageCopy}. */
  public void pageCopy(BufferView dst, BufferView src, long pageBytes, BufferView srcPages, BufferView dstPages,
      long numPages) {
    Ops.pageCopy(this, dst, src, pageBytes, srcPages, dstPages, numPages);
  }

  // ---------------------------------------------------------------- array transfers

  /**
   * Writes {@code src} into {@code dst} from element {@code index}, after the work queued so far
   * (which might still read the old contents). Device memory is staged through a pinned buffer.
   * Returns when the data is in place.
   */
  public void upload(Buffer dst, long index, float[] src) {
    upload(dst, index, src.length, Float.BYTES, (b, i) -> b.put(i, src));
  }

  public void upload(Buffer dst, long index, short[] src) {
    upload(dst, index, src.length, Short.BYTES, (b, i) -> b.put(i, src));
  }

  public void upload(Buffer dst, long index, long[] src) {
    upload(dst, index, src.length, Long.BYTES, (b, i) -> b.put(i, src));
  }

  public void upload(Buffer dst, long index, byte[] src) {
    upload(dst, index, src.length, 1, (b, i) -> b.put(i, src));
  }

  /** Reads {@code dst.length} elements of {@code src} from element {@code index}, after all queued work. */
  public void download(Buffer src, long index, float[] dst) {
    download(src, index, dst.length, Float.BYTES, (b, i) -> b.get(i, dst));
  }

  public void download(Buffer src, long index, short[] dst) {
    download(src, index, dst.length, Short.BYTES, (b, i) -> b.get(i, dst));
  }

  public void download(Buffer src, long index, long[] dst) {
    download(src, index, dst.length, Long.BYTES, (b, i) -> b.get(i, dst));
  }

  public void download(Buffer src, long index, byte[] dst) {
    download(src, index, dst.length, 1, (b, i) -> b.get(i, dst));
  }

  @FunctionalInterface
  private interface HostAccess {
    void apply(Buffer host, long index);
  }

  private void upload(Buffer dst, long index, int count, int elementBytes, HostAccess write) {
    Objects.requireNonNull(dst, "dst");
    Checks.requireCopyMemory(this, dst, "dst");
    dst.checkRange(index, count, elementBytes);
    synchronize();
    if (count == 0) {
      return;
    }
    if (dst.isHostAccessible()) {
      write.apply(dst, index);
      return;
    }
    long bytes = (long) count * elementBytes;
    try (Buffer staging = Buffer.allocate(backend, device, MemoryTier.PINNED_HOST, bytes)) {
      write.apply(staging, 0);
      memcpy(dst, index * elementBytes, staging, 0, bytes);
      synchronize(); // the staging buffer is freed next
    }
  }

  private void download(Buffer src, long index, int count, int elementBytes, HostAccess read) {
    Objects.requireNonNull(src, "src");
    Checks.requireCopyMemory(this, src, "src");
    src.checkRange(index, count, elementBytes);
    synchronize();
    if (count == 0) {
      return;
    }
    if (src.isHostAccessible()) {
      read.apply(src, index);
      return;
    }
    long bytes = (long) count * elementBytes;
    try (Buffer staging = Buffer.allocate(backend, device, MemoryTier.PINNED_HOST, bytes)) {
      memcpy(staging, 0, src, index * elementBytes, bytes);
      synchronize();
      read.apply(staging, 0);
    }
  }

  @Override
  public String toString() {
    return "Stream(" + backend + ":" + device + (isClosed() ? ", closed)" : ")");
  }
}
