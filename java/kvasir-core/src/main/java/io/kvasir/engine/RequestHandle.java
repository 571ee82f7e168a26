package io.kvasir.engine;

/** A request queued on an {@link EngineLoop}. Thread-safe. */
public interface RequestHandle {
  /** The engine's request id of sample 0 (sample j is {@code id() + j}; the sampling key). */
  long id();

  /**
   * Ends the request (all samples) with {@link FinishReason#CANCELLED} unless it already ended;
   * its pages are freed at the next step boundary at the latest. Idempotent; never blocks.
   */
  void cancel();

  /** Whether every sample got its terminal call (onFinish or onError). */
  boolean isDone();
}
