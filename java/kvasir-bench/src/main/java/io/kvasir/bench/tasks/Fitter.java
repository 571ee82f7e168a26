package io.kvasir.bench.tasks;

import java.util.function.IntFunction;
import java.util.function.IntToDoubleFunction;

/**
 * Fills a token budget with as many units (haystack sentences, JSON pairs, documents) as fit.
 * The estimate sums the units' cached counts and aims {@code slack} tokens below the budget;
 * then the whole prompt is counted exactly, usually once. Units are dropped (re-counting) while
 * it is over the budget, and added only when there is room for the next unit plus the slack.
 * After each exact count the unit estimates are rescaled by what the count showed (the average
 * of sampled units can be off by a percent). The result never exceeds the budget.
 */
final class Fitter {
  /** Exact counts before stepping one unit at a time. */
  private static final int MAX_ESTIMATED_STEPS = 8;

  /** The chosen unit count, its prompt and that prompt's exact token count. */
  record Fit(int units, String prompt, int tokens) {}

  private Fitter() {}

  /**
   * @param build    the prompt with {@code n} units
   * @param unitCost the estimated tokens unit {@code i} adds (0-based)
   * @param fixed    the estimated tokens of the prompt with no units
   * @param minUnits fewest units a prompt may have
   * @param maxUnits most units a prompt may have
   * @param slack    tokens the estimate stays below the budget (its expected error), so that one
   *                 exact count usually suffices
   * @throws IllegalArgumentException naming the task, the length and the minimum when even
   *     {@code minUnits} do not fit
   */
  static Fit fit(Task task, TokenCounter counter, int budget, IntFunction<String> build, IntToDoubleFunction unitCost,
      double fixed, int minUnits, int maxUnits, int slack) {
    double target = budget - slack;
    int n = minUnits;
    double sum = 0;  // unscaled estimate of units 0..n-1
    for (int i = 0; i < minUnits; ++i) sum += unitCost.applyAsDouble(i);
    while (n < maxUnits && fixed + sum + unitCost.applyAsDouble(n) <= target) {
      sum += unitCost.applyAsDouble(n++);
    }
    double scale = 1;
    Fit best = null;          // the largest unit count verified to fit
    int over = maxUnits + 1;  // the smallest unit count verified not to fit
    for (int step = 0; step < MAX_ESTIMATED_STEPS; ++step) {
      String prompt = build.apply(n);
      int tokens = counter.count(prompt);
      if (n > 0 && sum > 0 && tokens > fixed) {
        scale = (tokens - fixed) / sum;
      }
      if (tokens <= budget) {
        best = new Fit(n, prompt, tokens);
        double room = budget - tokens - slack;
        int k = 0;
        while (n + k < maxUnits && n + k + 1 < over && room >= scale * unitCost.applyAsDouble(n + k)) {
          double c = unitCost.applyAsDouble(n + k++);
          room -= scale * c;
          sum += c;
        }
        if (k == 0) {
          return best;
        }
        n += k;
      } else {
        over = n;
        if (n == minUnits) {
          throw tooSmall(task, budget, tokens);
        }
        double excess = tokens - budget + slack;
        int k = 0;
        while (n - k > minUnits && excess > 0) {
          double c = unitCost.applyAsDouble(n - ++k);
          excess -= scale * c;
          sum -= c;
        }
        if (k == 0) {
          sum -= unitCost.applyAsDouble(n - 1);
          k = 1;
        }
        n -= k;
        if (best != null && n <= best.units()) {
          return best;
        }
      }
    }
    if (best != null) {
      return best;
    }
    for (n = over - 1; n >= minUnits; --n) {
      String prompt = build.apply(n);
      int tokens = counter.count(prompt);
      if (tokens <= budget) {
        return new Fit(n, prompt, tokens);
      }
      if (n == minUnits) {
        throw tooSmall(task, budget, tokens);
      }
    }
    throw new IllegalStateException("unreachable: no unit count tried for " + task);
  }

  static LengthTooSmallException tooSmall(Task task, int length, int minimum) {
    return new LengthTooSmallException(task, length, minimum);
  }
}
