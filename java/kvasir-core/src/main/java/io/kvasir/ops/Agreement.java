package io.kvasir.ops;

/**
 * How closely outputs match expected values, summarized at the worst element (largest
 * error / tolerance). An expected -inf must come back exactly -inf, an expected finite value
 * finite and within its tolerance: so NaN (the poison of unwritten outputs) never passes.
 *
 * @param error |actual - expected| at the worst element (+inf for a NaN or a wrong infinity)
 * @param tolerance the tolerance at that element
 * @param where the worst element, e.g. {@code o[3][17]}, or empty
 * @param detail what was seen there, or empty when nothing was compared
 */
public record Agreement(boolean passed, double error, double tolerance, String where, String detail) {
  static final Agreement EMPTY = new Agreement(true, 0, 0, "", "");

  /**
   * Compares {@code actual} with {@code expected} element by element.
   *
   * @param rowLength elements per row, to name the worst element as [row][column] (1 for vectors)
   */
  static Agreement of(String tensor, int rowLength, double[] expected, double[] actual, double[] tolerance) {
    if (expected.length != actual.length || expected.length != tolerance.length) {
      throw new IllegalArgumentException(tensor + ": " + expected.length + " expected, " + actual.length + " actual, "
          + tolerance.length + " tolerances");
    }
    int worst = -1;
    double worstRatio = -1;
    double worstError = 0;
    boolean passed = true;
    for (int i = 0; i < expected.length; i++) {
      double e = expected[i];
      double a = actual[i];
      double error;
      if (Double.isNaN(e)) {
        error = Double.isNaN(a) ? 0 : Double.POSITIVE_INFINITY;
      } else if (Double.isInfinite(e)) {
        error = a == e ? 0 : Double.POSITIVE_INFINITY;
      } else {
        error = Double.isFinite(a) ? Math.abs(a - e) : Double.POSITIVE_INFINITY;
      }
      boolean ok = error <= tolerance[i];
      passed &= ok;
      double ratio = ok && error == 0 ? 0 : (tolerance[i] > 0 ? error / tolerance[i] : Double.POSITIVE_INFINITY);
      if (ratio > worstRatio) {
        worstRatio = ratio;
        worst = i;
        worstError = error;
      }
    }
    if (worst < 0) {
      return EMPTY;
    }
    String where = rowLength == 1 ? tensor + "[" + worst + "]"
        : tensor + "[" + worst / rowLength + "][" + worst % rowLength + "]";
    String detail = where + ": got " + actual[worst] + ", want " + expected[worst] + " (tolerance "
        + tolerance[worst] + ")" + (Double.isNaN(actual[worst]) ? ", NaN: not written?" : "");
    return new Agreement(passed, worstError, tolerance[worst], where, detail);
  }

  /** The worse of two agreements: any failure wins, then the larger error / tolerance. */
  Agreement worse(Agreement other) {
    if (passed != other.passed) {
      return passed ? other : this;
    }
    return other.ratio() > ratio() ? other : this;
  }

  /** error / tolerance (0 when both are 0, +inf for an error with no tolerance). */
  public double ratio() {
    if (error == 0) {
      return 0;
    }
    return tolerance > 0 ? error / tolerance : Double.POSITIVE_INFINITY;
  }
}
