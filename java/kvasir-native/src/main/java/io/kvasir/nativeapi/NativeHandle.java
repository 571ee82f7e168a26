package io.kvasir.nativeapi;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.bytedeco.javacpp.Pointer;

/**
 * One owned native handle ({@code kv_buffer_t}, {@code kv_stream_t}, {@code kv_event_t}).
 *
 * <p>The pointer sits in an {@link AtomicReference}: {@link #close()} swaps it out once, so double
 * close is a no-op, and every later use throws {@link IllegalStateException} naming the class.
 *
 * <p>With {@code -Dkvasir.track_resources=true} (read at each allocation) every handle records
 * where it was allocated and, once closed, where; a handle that becomes unreachable without being
 * closed is logged as a leak with its allocation site. The leak is only reported, not freed: the
 * C ABI frees nothing behind the caller's back, and a GC thread cannot know whether queued stream
 * work still uses the memory.
 */
public abstract class NativeHandle implements AutoCloseable {
  /** System property that turns leak tracking on. */
  public static final String TRACK_PROPERTY = "kvasir.track_resources";

  private static final Logger LOG = LogManager.getLogger(NativeHandle.class);
  private static final AtomicLong LEAKS = new AtomicLong();

  private final AtomicReference<Pointer> pointer;
  private final LeakWatch watch; // null unless tracking was on at allocation
  private final Cleaner.Cleanable cleanable;
  private volatile Throwable closeSite;

  /** Subclasses live in this package only: each knows how to free its own kind of handle. */
  NativeHandle(Pointer handle, String description) {
    if (handle == null || handle.isNull()) {
      throw new IllegalArgumentException(getClass().getSimpleName() + " needs a non-NULL native handle");
    }
    this.pointer = new AtomicReference<>(handle);
    if (Boolean.getBoolean(TRACK_PROPERTY)) {
      this.watch = new LeakWatch(description, new Throwable("allocation site"));
      this.cleanable = CleanerHolder.CLEANER.register(this, watch);
    } else {
      this.watch = null;
      this.cleanable = null;
    }
  }

  /** Frees the native handle; called exactly once, by {@link #close()}. */
  abstract void free(Pointer handle);

  /**
   * The live handle.
   *
   * @throws IllegalStateException after {@link #close()}
   */
  final Pointer handle() {
    Pointer p = pointer.get();
    if (p == null) {
      String message = getClass().getSimpleName() + " is closed";
      Throwable site = closeSite;
      throw site == null ? new IllegalStateException(message) : new IllegalStateException(message, site);
    }
    return p;
  }

  /** Whether {@link #close()} has run. */
  public final boolean isClosed() {
    return pointer.get() == null;
  }

  /** Frees the native resource. Safe to call more than once; later calls do nothing. */
  @Override
  public final void close() {
    Pointer p = pointer.getAndSet(null);
    if (p == null) {
      return;
    }
    if (watch != null) {
      closeSite = new Throwable("closed here");
      watch.closed = true;
      cleanable.clean();
    }
    free(p);
  }

  /** Leaks reported in this process so far (only counted while tracking is on). */
  public static long leaksDetected() {
    return LEAKS.get();
  }

  /** Whether handles allocated now are tracked ({@code -Dkvasir.track_resources=true}). */
  public static boolean isTracking() {
    return Boolean.getBoolean(TRACK_PROPERTY);
  }

  // Holds no reference to its handle, or the handle could never become unreachable.
  private static final class LeakWatch implements Runnable {
    private final String description;
    private final Throwable allocationSite;
    private volatile boolean closed;

    LeakWatch(String description, Throwable allocationSite) {
      this.description = description;
      this.allocationSite = allocationSite;
    }

    @Override
    public void run() {
      if (!closed) {
        LEAKS.incrementAndGet();
        LOG.warn("{} was never closed; its native memory stays allocated. It was allocated at:", description,
            allocationSite);
      }
    }
  }

  // A Cleaner owns a thread: create it only when tracking is used.
  private static final class CleanerHolder {
    static final Cleaner CLEANER = Cleaner.create();
  }
}
