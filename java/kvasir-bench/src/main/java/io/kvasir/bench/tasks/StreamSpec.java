package io.kvasir.bench.tasks;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.SplittableRandom;

/**
 * What record {@code i} of a stream is: seed {@code baseSeed + i}, its task (one task, or drawn
 * from a weighted mixture) and its length (fixed, or log-uniform in [min, max]). Both draws come
 * from {@code SplittableRandom(seed ^ MIX_SALT)}, so a record's plan depends on its seed alone.
 */
public final class StreamSpec {
  private static final long MIX_SALT = Task.fnv1a64("kvasir-bench mix");

  /** One record to generate. */
  public record Plan(Task task, long seed, int length) {}

  private final List<Task> tasks;
  private final double[] cumulative;  // normalized, last = 1
  private final int minLength;
  private final int maxLength;
  private final long baseSeed;

  private StreamSpec(List<Task> tasks, double[] cumulative, int minLength, int maxLength, long baseSeed) {
    this.tasks = tasks;
    this.cumulative = cumulative;
    this.minLength = minLength;
    this.maxLength = maxLength;
    this.baseSeed = baseSeed;
    if (minLength < 1 || maxLength < minLength) {
      throw new IllegalArgumentException("length range " + minLength + ":" + maxLength + " must have 1 <= MIN <= MAX");
    }
  }

  /** Whether lengths are drawn from a range (rather than one fixed length). */
  public boolean isRange() {
    return maxLength > minLength;
  }

  /** Every record of one task. */
  public static StreamSpec of(Task task, int minLength, int maxLength, long baseSeed) {
    return new StreamSpec(List.of(Objects.requireNonNull(task, "task")), new double[] {1}, minLength, maxLength,
        baseSeed);
  }

  /**
   * A mixture {@code "passkey=0.2,arithmetic=0.3,..."}: weights are relative (normalized here).
   *
   * @throws IllegalArgumentException naming the bad entry (unknown task, repeated task, weight
   *     not a non-negative number) or when no weight is positive
   */
  public static StreamSpec mixture(String spec, int minLength, int maxLength, long baseSeed) {
    List<Task> tasks = new ArrayList<>();
    List<Double> weights = new ArrayList<>();
    for (String entry : spec.split(",")) {
      if (entry.isBlank()) {
        continue;
      }
      int eq = entry.indexOf('=');
      if (eq < 0) {
        throw new IllegalArgumentException("mix entry \"" + entry.strip() + "\" must be TASK=WEIGHT");
      }
      Task task = Task.of(entry.substring(0, eq));
      if (tasks.contains(task)) {
        throw new IllegalArgumentException("mix names " + task + " twice");
      }
      double w;
      try {
        w = Double.parseDouble(entry.substring(eq + 1).strip());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("mix weight of " + task + " \"" + entry.substring(eq + 1).strip()
            + "\" is not a number", e);
      }
      if (!(w >= 0) || Double.isInfinite(w)) {
        throw new IllegalArgumentException("mix weight of " + task + " is " + w + "; weights must be finite and >= 0");
      }
      tasks.add(task);
      weights.add(w);
    }
    double total = weights.stream().mapToDouble(Double::doubleValue).sum();
    if (tasks.isEmpty() || !(total > 0)) {
      throw new IllegalArgumentException("mix \"" + spec + "\" has no task with a positive weight");
    }
    double[] cumulative = new double[tasks.size()];
    double sum = 0;
    for (int i = 0; i < cumulative.length; ++i) {
      sum += weights.get(i);
      cumulative[i] = sum / total;
    }
    cumulative[cumulative.length - 1] = 1;
    return new StreamSpec(List.copyOf(tasks), cumulative, minLength, maxLength, baseSeed);
  }

  public int maxLength() {
    return maxLength;
  }

  /** The tasks of the stream, in spec order. */
  public List<Task> tasks() {
    return tasks;
  }

  /** Normalized weight of a task (0 when it is not in the stream). */
  public double weight(Task task) {
    int i = tasks.indexOf(task);
    return i < 0 ? 0 : cumulative[i] - (i == 0 ? 0 : cumulative[i - 1]);
  }

  /** Record {@code index} of the stream. */
  public Plan plan(long index) {
    long seed = baseSeed + index;
    SplittableRandom rng = new SplittableRandom(seed ^ MIX_SALT);
    Task task = tasks.get(0);
    if (tasks.size() > 1) {
      double u = rng.nextDouble();
      int i = 0;
      while (i < cumulative.length - 1 && u >= cumulative[i]) {
        ++i;
      }
      task = tasks.get(i);
    }
    int length = minLength;
    if (maxLength > minLength) {
      double log = Math.log(minLength) + rng.nextDouble() * (Math.log(maxLength) - Math.log(minLength));
      length = (int) Math.max(minLength, Math.min(maxLength, Math.round(Math.exp(log))));
    }
    return new Plan(task, seed, length);
  }
}
