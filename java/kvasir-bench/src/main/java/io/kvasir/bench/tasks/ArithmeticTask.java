package io.kvasir.bench.tasks;

import java.util.List;
import java.util.SplittableRandom;

/**
 * {@code arithmetic}: two or three additions and subtractions of 2- and 3-digit operands,
 * evaluated left to right, with every intermediate result in 0..9999. The answer is a reasoning
 * trace: each step, an inverse check of it, and the result.
 */
final class ArithmeticTask {
  private ArithmeticTask() {}

  static TaskRecord generate(long seed, int length, TokenCounter counter) {
    SplittableRandom rng = Task.ARITHMETIC.random(seed);
    int ops = 2 + rng.nextInt(2);
    int first = operand(rng, 999);
    StringBuilder prompt = new StringBuilder("Compute ").append(first);
    StringBuilder answer = new StringBuilder();
    int x = first;
    for (int k = 1; k <= ops; ++k) {
      boolean add = rng.nextBoolean();
      // A subtraction never goes below zero: its operand is drawn up to x; below 10 it becomes an addition.
      if (!add && x < 10) {
        add = true;
      }
      int y = operand(rng, add ? 999 : Math.min(999, x));
      int r = add ? x + y : x - y;
      char op = add ? '+' : '-';
      prompt.append(' ').append(op).append(' ').append(y);
      String word = k == 1 ? "First, " : k == ops ? "Finally, " : "Next, ";
      if (k > 1) {
        answer.append(' ');
      }
      answer.append(word).append(x).append(' ').append(op).append(' ').append(y).append(" = ").append(r)
          .append(". Wait, let me verify: ").append(r).append(' ').append(add ? '-' : '+').append(' ').append(y)
          .append(" = ").append(x).append(". Yes, ").append(x).append(' ').append(op).append(' ').append(y)
          .append(" = ").append(r).append('.');
      x = r;
    }
    prompt.append('.');
    answer.append(" The answer is ").append(x).append('.');
    String text = prompt.toString();
    int tokens = counter.count(text);
    if (tokens > length) {
      throw Fitter.tooSmall(Task.ARITHMETIC, length, tokens);
    }
    return new TaskRecord(TaskGenerator.id(Task.ARITHMETIC, seed), Task.ARITHMETIC.id(), seed, length, tokens, null,
        text, answer.toString(), List.of(Integer.toString(x)), null);
  }

  /** Uniform in [10, max]. */
  private static int operand(SplittableRandom rng, int max) {
    return 10 + rng.nextInt(max - 9);
  }
}
