package io.kvasir.bench;

import io.kvasir.bench.serve.Workloads;
import io.kvasir.engine.Engine;
import io.kvasir.engine.EngineClock;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.SamplingParams;
import io.kvasir.engine.ServeResult;
import io.kvasir.engine.StepTrace;
import io.kvasir.engine.TimedRequest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The pp-tg matrix (llama-bench-like; docs/benchmarks.md, "pp-tg"): prefill tokens/s per prompt
 * length at batch 1, and decode tokens/s per (context, batch), the context prefilled untimed first
 * so that with prefix caching every sequence decodes from the first timed step.
 */
final class PpTgRunner {
  private static final Logger LOG = LogManager.getLogger(PpTgRunner.class);

  /**
   * One cell of the matrix.
   *
   * @param test      "pp" or "tg"
   * @param context   pp: the prompt length; tg: the context the decode starts from
   * @param batch     sequences (pp: 1)
   * @param tokens    tokens of the counted steps
   * @param seconds   time of the counted steps
   * @param steps     counted steps (pp: every step of the run; tg: the pure decode steps)
   * @param batchMean mean sequences per counted step
   */
  record Row(String test, int context, int batch, long tokens, double seconds, int steps, double batchMean) {
    double tokensPerSecond() {
      return seconds > 0 ? tokens / seconds : Double.NaN;
    }
  }

  /** The matrix, and the cache over all its runs: peak pages, counters summed. */
  record Result(List<Row> rows, ServeResult.KvUsage kv, Map<String, Long> counters) {}

  private final int[] pp;
  private final int[] tg;
  private final int[] tgBatch;
  private final int tgTokens;
  private final long seed;

  PpTgRunner(int[] pp, int[] tg, int[] tgBatch, int tgTokens, long seed) {
    this.pp = pp.clone();
    this.tg = tg.clone();
    this.tgBatch = tgBatch.clone();
    this.tgTokens = tgTokens;
    this.seed = seed;
  }

  /** Tokens one sequence needs at most. */
  int maxContext() {
    int m = 0;
    for (int p : pp) {
      m = Math.max(m, p + 1);
    }
    for (int c : tg) {
      m = Math.max(m, c + tgTokens);
    }
    return m;
  }

  /** Tokens the KV cache must hold at once with pages of {@code pageTokens} (whole pages per sequence). */
  long budgetTokens(int pageTokens) {
    long m = 0;
    for (int p : pp) {
      m = Math.max(m, RunCommand.pagedTokens(p + 1, pageTokens));
    }
    for (int c : tg) {
      for (int b : tgBatch) {
        m = Math.max(m, b * RunCommand.pagedTokens(c + tgTokens, pageTokens));
      }
    }
    return m;
  }

  int maxBatch() {
    int m = 1;
    for (int b : tgBatch) {
      m = Math.max(m, b);
    }
    return m;
  }

  Result run(Engine engine, String label) {
    Workloads.PpTgPrompts prompts = Workloads.ppTg(pp, tg, tgBatch, seed, engine.shape().vocabSize());
    List<Row> rows = new ArrayList<>();
    Map<String, Long> counters = new LinkedHashMap<>();
    int peak = 0;
    ServeResult.KvUsage kv = ServeResult.KvUsage.NONE;
    List<ServeResult> runs = new ArrayList<>();
    for (int i = 0; i < pp.length; ++i) {
      ServeResult r = serve(engine, List.of(prompts.pp().get(i)), 1);
      runs.add(r);
      long tokens = 0;
      long nanos = 0;
      for (StepTrace st : r.steps()) {
        tokens += st.tokens();
        nanos += st.nanos();
      }
      rows.add(new Row("pp", pp[i], 1, tokens, nanos / 1e9, r.steps().size(), 1));
      log(label, rows.get(rows.size() - 1));
    }
    int cell = 0;
    for (int c : tg) {
      for (int b : tgBatch) {
        List<int[]> cellPrompts = prompts.tg().get(cell++);
        runs.add(serve(engine, cellPrompts, 1));  // untimed: fills the prefix cache with the context
        ServeResult r = serve(engine, cellPrompts, tgTokens);
        runs.add(r);
        long tokens = 0;
        long nanos = 0;
        long seqs = 0;
        int steps = 0;
        for (StepTrace st : r.steps()) {
          if (st.tokens() == st.sequences()) {  // pure decode: one token per sequence
            tokens += st.tokens();
            nanos += st.nanos();
            seqs += st.sequences();
            ++steps;
          }
        }
        rows.add(new Row("tg", c, b, tokens, nanos / 1e9, steps, steps > 0 ? (double) seqs / steps : Double.NaN));
        log(label, rows.get(rows.size() - 1));
      }
    }
    for (ServeResult r : runs) {
      peak = Math.max(peak, r.kv().peakPagesUsed());
      kv = r.kv();
      r.counters().forEach((k, v) -> counters.merge(k, v, Long::sum));
    }
    kv = new ServeResult.KvUsage(kv.pages(), kv.pageTokens(), kv.pageBytes(), peak);
    return new Result(rows, kv, counters);
  }

  private static ServeResult serve(Engine engine, List<int[]> prompts, int outputTokens) {
    List<TimedRequest> timed = new ArrayList<>();
    for (int[] p : prompts) {
      timed.add(TimedRequest.at(0, GenerationRequest.of(p, outputTokens, SamplingParams.greedy()).withIgnoreEos(true)));
    }
    return engine.serve(timed, null, 0, EngineClock.SYSTEM);
  }

  private static void log(String label, Row r) {
    LOG.info("{}: {} context {} batch {}: {} tokens/s ({} tokens in {} steps, {} s)", label, r.test(), r.context(),
        r.batch(), String.format(Locale.ROOT, "%.1f", r.tokensPerSecond()), r.tokens(), r.steps(),
        String.format(Locale.ROOT, "%.3f", r.seconds()));
  }
}
