package io.kvasir.bench.tasks;

import java.util.Objects;

/**
 * Generates task records. A record depends only on (task, seed, length, haystack file, counter)
 * and on the fixed depth when one is set: every random draw comes from
 * {@code SplittableRandom(seed ^ salt(task))} in a fixed order, so records can be generated in
 * any order, on any thread, and reproduce byte for byte.
 *
 * <p>Thread-safe (the haystack's count cache is shared by all threads).
 */
public final class TaskGenerator {
  private final Haystack haystack;
  private final TokenCounter counter;
  private final Double fixedDepth;

  /**
   * @param haystack   the prose of the haystack tasks and docqa; may be null when only
   *                   {@code kv_retrieval} and {@code arithmetic} are generated
   * @param fixedDepth the needle's depth in [0, 1] for the single-needle tasks (passkey,
   *                   niah_single); null draws it per record
   */
  public TaskGenerator(Haystack haystack, TokenCounter counter, Double fixedDepth) {
    this.haystack = haystack;
    this.counter = Objects.requireNonNull(counter, "counter");
    if (fixedDepth != null && !(fixedDepth >= 0 && fixedDepth <= 1)) {
      throw new IllegalArgumentException("depth " + fixedDepth + " must be in [0, 1]");
    }
    this.fixedDepth = fixedDepth;
  }

  public TokenCounter counter() {
    return counter;
  }

  /**
   * One record whose prompt has at most {@code length} tokens, filled as far as the task allows.
   *
   * @throws IllegalArgumentException naming the task, the length and the minimum when the task's
   *     fixed text does not fit, or when the task needs a haystack and there is none
   */
  public TaskRecord generate(Task task, long seed, int length) {
    if (task.needsHaystack() && haystack == null) {
      throw new IllegalArgumentException("task " + task + " needs a haystack file (--haystack)");
    }
    if (length < 1) {
      throw new IllegalArgumentException("task " + task + ": length " + length + " must be >= 1");
    }
    return switch (task) {
      case PASSKEY, NIAH_SINGLE, NIAH_MULTIKEY, NIAH_MULTIVALUE, VARIABLE_TRACKING, NIAH_MULTIQUERY ->
          NeedleTasks.generate(task, seed, length, haystack, counter, fixedDepth);
      case KV_RETRIEVAL -> KvRetrievalTask.generate(seed, length, counter);
      case ARITHMETIC -> ArithmeticTask.generate(seed, length, counter);
      case DOCQA -> DocQaTask.generate(seed, length, haystack, counter);
      case CWE -> CommonWordsTask.generate(seed, length, counter);
    };
  }

  static String id(Task task, long seed) {
    return task.id() + "-" + seed;
  }
}
