package io.kvasir.nativeapi;

import java.util.Objects;
import org.bytedeco.javacpp.Pointer;

/**
 * A point in a stream's work ({@code kv_event_t}), for ordering between streams and for timing.
 * On the CPU backend it is a host timestamp taken when recorded.
 */
public final class Event extends NativeHandle {
  private final Backend backend;
  private final int device;

  private Event(KvasirLibrary.kv_event handle, Backend backend, int device) {
    super(handle, "Event(" + backend + ":" + device + ")");
    this.backend = backend;
    this.device = device;
  }

  /** Creates an event on the stream's backend and device (not yet recorded). */
  public static Event create(Stream stream) {
    Objects.requireNonNull(stream, "stream");
    KvasirLibrary.kv_event out = new KvasirLibrary.kv_event();
    KvasirException.check(KvasirLibrary.kv_event_init(stream.nativeHandle(), out));
    return new Event(out, stream.backend(), stream.device());
  }

  @Override
  void free(Pointer handle) {
    KvasirLibrary.kv_event_free((KvasirLibrary.kv_event) handle);
  }

  KvasirLibrary.kv_event nativeHandle() {
    return (KvasirLibrary.kv_event) handle();
  }

  public Backend backend() {
    return backend;
  }

  public int device() {
    return device;
  }

  /** Marks the point after the work queued on {@code stream} so far. */
  public void record(Stream stream) {
    Objects.requireNonNull(stream, "stream");
    KvasirException.check(KvasirLibrary.kv_event_record(nativeHandle(), stream.nativeHandle()));
  }

  /** Waits until the recorded work is done. */
  public void synchronize() {
    KvasirException.check(KvasirLibrary.kv_event_synchronize(nativeHandle()));
  }

  /** Milliseconds between two recorded, completed events of one device. */
  public static float elapsedMs(Event start, Event end) {
    Objects.requireNonNull(start, "start");
    Objects.requireNonNull(end, "end");
    float[] ms = new float[1];
    KvasirException.check(KvasirLibrary.kv_event_elapsed_ms(start.nativeHandle(), end.nativeHandle(), ms));
    return ms[0];
  }

  @Override
  public String toString() {
    return "Event(" + backend + ":" + device + (isClosed() ? ", closed)" : ")");
  }
}
