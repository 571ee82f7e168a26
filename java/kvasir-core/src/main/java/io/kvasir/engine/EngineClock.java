package io.kvasir.engine;

import java.util.concurrent.locks.LockSupport;

/**
 * The time source of {@link Engine#serve}: arrivals, token times and the wait for the next
 * arrival when nothing runs. Tests inject a clock that only moves when told to, so that arrival
 * handling is checked without sleeping or timing.
 */
public interface EngineClock {
  /** The JVM's monotonic clock; {@link #sleepUntil} parks the thread. */
  EngineClock SYSTEM = new EngineClock() {
    @Override
    public long nanoTime() {
      return System.nanoTime();
    }

    @Override
    public void sleepUntil(long nanoTime) throws InterruptedException {
      for (long left = nanoTime - System.nanoTime(); left > 0; left = nanoTime - System.nanoTime()) {
        LockSupport.parkNanos(left);
        if (Thread.interrupted()) {
          throw new InterruptedException("interrupted while waiting for the next request to arrive");
        }
      }
    }
  };

  /** Monotonic nanoseconds (an arbitrary origin, as {@link System#nanoTime}). */
  long nanoTime();

  /** Returns once {@link #nanoTime} has reached {@code nanoTime} (at once if it has). */
  void sleepUntil(long nanoTime) throws InterruptedException;
}
