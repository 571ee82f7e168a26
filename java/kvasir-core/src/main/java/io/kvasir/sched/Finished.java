package io.kvasir.sched;

/**
 * A request that left the scheduler, with everything it produced.
 *
 * @param id          the request id
 * @param output      output tokens (the stop token included when one ended it)
 * @param reason      why it ended
 * @param preemptions times its KV was dropped and recomputed
 */
public record Finished(long id, int[] output, Reason reason, int preemptions) {
  /** Why a request ended. */
  public enum Reason {
    /** A stop token was produced. */
    STOP,
    /** maxNewTokens were produced. */
    LENGTH,
    /** The sequence reached the model's context (maxModelLen). */
    CONTEXT,
    /** Cancelled by the caller. */
    CANCELLED
  }
}
