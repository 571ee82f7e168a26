package io.kvasir.bench.tasks;

/** A task's fixed text (and its fewest haystack units) does not fit the requested length. */
public final class LengthTooSmallException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;
  private final int minimum;

  LengthTooSmallException(Task task, int length, int minimum) {
    super("task " + task + ": length " + length + " is too small; the minimum is " + minimum + " tokens");
    this.minimum = minimum;
  }

  /** The tokens of the smallest prompt the task can make: a length that surely fits. */
  public int minimum() {
    return minimum;
  }
}
