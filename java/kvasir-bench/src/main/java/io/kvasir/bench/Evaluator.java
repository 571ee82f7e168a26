package io.kvasir.bench;

import io.kvasir.bench.tasks.Haystack;
import io.kvasir.bench.tasks.LengthTooSmallException;
import io.kvasir.bench.tasks.Task;
import io.kvasir.bench.tasks.TaskGenerator;
import io.kvasir.bench.tasks.TaskRecord;
import io.kvasir.bench.tasks.TaskScorer;
import io.kvasir.bench.tasks.TokenCounter;
import io.kvasir.engine.Engine;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.SamplingParams;
import io.kvasir.model.tokenizer.ChatMessage;
import java.util.ArrayList;
import java.util.List;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Accuracy of a model on generated records: each prompt rendered by the model's chat template as
 * one user message, greedy generation of at most the expected answer's tokens plus 16, exact-match
 * scoring ({@link TaskScorer}). Records are counted with the model's own tokenizer, and their
 * prompt budget leaves room in {@code length} for the template, the answer and 8 tokens of slack.
 */
final class Evaluator {
  private static final Logger LOG = LogManager.getLogger(Evaluator.class);
  /** Tokens a template-rendered prompt plus its answer leave free in {@code length}. */
  static final int SLACK_TOKENS = 8;
  /** Tokens generated beyond the expected answer's. */
  static final int EXTRA_ANSWER_TOKENS = 16;
  private static final int MAX_FAILURES = 5;
  private static final long PROGRESS_NANOS = 30_000_000_000L;

  /** One sample that was scored wrong. */
  record Failure(String id, String expected, String got) {}

  /**
   * The result of one (task, length) cell.
   *
   * @param promptBudget       the prompt token budget the records were generated with
   * @param maxTotalTokens     the largest chat-rendered prompt plus answer plus slack (<= length)
   * @param meanPrefillSeconds mean time from a batch's start to a sample's first token
   */
  record Cell(Task task, int length, int promptBudget, int maxTotalTokens, int count, int correct, double meanPartial,
      double meanPromptTokens, double meanChatTokens, double meanPrefillSeconds, double seconds,
      List<Failure> failures) {
    double accuracy() {
      return count == 0 ? 0 : correct / (double) count;
    }
  }

  private final Engine engine;
  private final TokenCounter counter;
  private final TaskGenerator generator;
  private final int batch;
  private final int templateTokens;
  private java.util.function.BiConsumer<Integer, TaskRecord> recordSink;  // eval --export-records

  Evaluator(Engine engine, TokenCounter counter, Haystack haystack, Double depth, int batch) {
    this.engine = engine;
    this.counter = counter;
    this.generator = new TaskGenerator(haystack, counter, depth);
    this.batch = Math.max(1, Math.min(batch, engine.maxBatch()));
    this.templateTokens = engine.encodeChat(List.of(ChatMessage.user(""))).length;
  }

  /** Hands every record a cell runs to {@code sink} with the cell's length, before it runs. */
  void onRecords(java.util.function.BiConsumer<Integer, TaskRecord> sink) {
    this.recordSink = sink;
  }

  /** Tokens the chat template adds around an empty user message (with the generation prompt). */
  int templateTokens() {
    return templateTokens;
  }

  private record Sample(TaskRecord record, int[] chatIds, int answerTokens) {}

  Cell run(Task task, int length, int count, long seed) {
    long start = System.nanoTime();
    List<Sample> samples = samples(task, length, count, seed);
    if (recordSink != null) {
      for (Sample s : samples) recordSink.accept(length, s.record());
    }
    int budget = samples.isEmpty() ? 0 : samples.get(0).record().length();
    int maxTotal = 0;
    for (Sample s : samples) maxTotal = Math.max(maxTotal, s.chatIds().length + s.answerTokens() + SLACK_TOKENS);
    LOG.info("{} at length {}: {} samples, prompt budget {} tokens (template {}, largest prompt + answer + slack {})",
        task, length, count, budget, templateTokens, maxTotal);
    int correct = 0;
    double partial = 0;
    double promptTokens = 0;
    double chatTokens = 0;
    double prefill = 0;
    List<Failure> failures = new ArrayList<>();
    long lastLog = System.nanoTime();
    int lastDecile = 0;
    for (int from = 0; from < samples.size(); from += batch) {
      List<Sample> group = samples.subList(from, Math.min(samples.size(), from + batch));
      List<GenerationRequest> requests = new ArrayList<>();
      for (Sample s : group) {
        requests.add(GenerationRequest.of(s.chatIds(), s.answerTokens() + EXTRA_ANSWER_TOKENS, SamplingParams.greedy()));
      }
      List<GenerationResult> results = engine.generateAll(requests, null);
      for (int i = 0; i < group.size(); ++i) {
        Sample s = group.get(i);
        GenerationResult r = results.get(i);
        String got = r.text() == null ? "" : r.text();
        TaskScorer.Score score = TaskScorer.score(s.record(), got);
        if (score.correct()) {
          ++correct;
        } else if (failures.size() < MAX_FAILURES) {
          failures.add(new Failure(s.record().id(), s.record().answer(), got));
        }
        partial += score.partial();
        promptTokens += s.record().promptTokens();
        chatTokens += s.chatIds().length;
        prefill += r.stats().ttftMillis() / 1000.0;
      }
      int done = from + group.size();
      int decile = done * 10 / samples.size();
      long now = System.nanoTime();
      if (decile > lastDecile || now - lastLog >= PROGRESS_NANOS) {
        LOG.info("{} at length {}: {}/{} done, accuracy so far {}", task, length, done, samples.size(),
            String.format("%.3f", correct / (double) done));
        lastDecile = decile;
        lastLog = now;
      }
    }
    int n = samples.size();
    return new Cell(task, length, budget, maxTotal, n, correct, n == 0 ? 0 : partial / n, n == 0 ? 0 : promptTokens / n,
        n == 0 ? 0 : chatTokens / n, n == 0 ? 0 : prefill / n, (System.nanoTime() - start) / 1e9, failures);
  }

  /**
   * The records of a cell with one prompt budget for all: first the records at the budget that
   * leaves room for the template and slack only, whose longest answer sets the room left for
   * the answer; then, should a record still overflow {@code length}, the budget shrinks by the
   * overflow (answers can change with the budget, e.g. which document is asked about).
   */
  private List<Sample> samples(Task task, int length, int count, long seed) {
    int budget = length - templateTokens - SLACK_TOKENS;
    int answerRoom = 0;
    for (int i = 0; i < count; ++i) {
      answerRoom = Math.max(answerRoom, counter.count(generate(task, seed + i, budget, length).answer()));
    }
    budget -= answerRoom;
    for (int attempt = 0; ; ++attempt) {
      List<Sample> samples = new ArrayList<>();
      int overflow = 0;
      for (int i = 0; i < count; ++i) {
        TaskRecord r = generate(task, seed + i, budget, length);
        int[] ids = engine.encodeChat(List.of(ChatMessage.user(r.prompt())));
        int answerTokens = counter.count(r.answer());
        overflow = Math.max(overflow, ids.length + answerTokens + SLACK_TOKENS - length);
        samples.add(new Sample(r, ids, answerTokens));
      }
      if (overflow <= 0 || attempt == 3) {
        if (overflow > 0) {
          LOG.warn("{} at length {}: the largest sample exceeds the length by {} tokens", task, length, overflow);
        }
        return samples;
      }
      budget -= overflow;
    }
  }

  private TaskRecord generate(Task task, long seed, int budget, int length) {
    if (budget < 1) {
      throw new IllegalArgumentException("task " + task + ": length " + length + " leaves no prompt budget after the"
          + " chat template (" + templateTokens + " tokens), the answer and " + SLACK_TOKENS + " tokens of slack");
    }
    try {
      return generator.generate(task, seed, budget);
    } catch (LengthTooSmallException e) {
      throw new IllegalArgumentException(e.getMessage() + " (the prompt budget of length " + length + " after the"
          + " chat template, the answer and slack)", e);
    }
  }
}
