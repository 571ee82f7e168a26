package io.kvasir.bench.serve;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The workload generators of {@code kvasir-bench run} and their seed rule (docs/benchmarks.md,
 * "The seed rule"). Every workload draws from streams of its own, so adding a workload or a
 * policy changes no other workload's requests.
 */
public final class Workloads {
  /** Mixed into the seed of the RAG streams ("RAG"). */
  static final long RAG_SALT = 0x5241470000000000L;
  /** Mixed into the seed of the pp-tg streams ("PPTG"). */
  static final long PPTG_SALT = 0x5050544700000000L;

  private Workloads() {}

  /**
   * A serve-rule workload (offline, online, long-gen, shared-prefix): {@code SplittableRandom(seed)}
   * split into the shared prefix, the prompts, the arrivals and the output lengths, in that order.
   * Per request the prompt stream draws the length (unless a lengths file gives it) and then the
   * token ids; the output stream draws only when {@code output} is a range. With a fixed output
   * and no lengths file this is {@link Workload#generate}'s rule exactly.
   *
   * @param prompt the prompt length after the shared prefix (ignored with a lengths file)
   * @param output the output length (ignored with a lengths file)
   * @param file   (prompt, output) pairs, or null
   */
  public static BenchWorkload standard(String name, String label, int requests, LengthSpec prompt, LengthSpec output,
      LengthsFile file, int sharedPrefix, double rate, long seed, int vocabSize) {
    check(requests, rate, vocabSize);
    if (sharedPrefix < 0) {
      throw new IllegalArgumentException("shared prefix " + sharedPrefix + " tokens must be >= 0");
    }
    SplittableRandom root = new SplittableRandom(seed);
    SplittableRandom prefixRng = root.split();
    SplittableRandom promptRng = root.split();
    SplittableRandom arrivalRng = root.split();
    SplittableRandom outputRng = root.split();
    int[] prefix = prefixRng.ints(sharedPrefix, 0, vocabSize).toArray();
    List<Workload.Request> out = new ArrayList<>(requests);
    double t = 0;
    for (int i = 0; i < requests; ++i) {
      int len = file != null ? file.get(i).promptTokens() : prompt.draw(promptRng);
      int[] p = new int[prefix.length + len];
      System.arraycopy(prefix, 0, p, 0, prefix.length);
      for (int j = prefix.length; j < p.length; ++j) {
        p[j] = promptRng.nextInt(vocabSize);
      }
      int outLen = file != null ? file.get(i).outputTokens() : output.isFixed() ? output.min() : output.draw(outputRng);
      if (i > 0 && !Double.isInfinite(rate)) {
        t += -Math.log(1 - arrivalRng.nextDouble()) / rate;
      }
      out.add(new Workload.Request(p, outLen, t));
    }
    String lengths = file != null ? "file" : prompt.isFixed() && output.isFixed() ? "fixed" : "uniform";
    return new BenchWorkload(name, label, out, rate, seed,
        "SplittableRandom(seed) split into prefix, prompt, arrival and output-length streams (Workloads.standard)",
        lengths, file == null ? null : file.path().toString(), sharedPrefix, null);
  }

  /**
   * A RAG workload, all at once: {@code SplittableRandom(seed ^ RAG_SALT)} split into the document
   * pool ({@code pool} documents of {@code docTokens} ids), the picks (per request a partial
   * Fisher-Yates shuffle of the pool's indices: its documents, in order), the questions and the
   * output lengths. Different requests share documents, in different orders and positions.
   */
  public static BenchWorkload rag(int requests, BenchWorkload.Rag rag, LengthSpec output, long seed, int vocabSize) {
    check(requests, Double.POSITIVE_INFINITY, vocabSize);
    SplittableRandom root = new SplittableRandom(seed ^ RAG_SALT);
    SplittableRandom docRng = root.split();
    SplittableRandom pickRng = root.split();
    SplittableRandom questionRng = root.split();
    SplittableRandom outputRng = root.split();
    int[][] docs = new int[rag.pool()][];
    for (int d = 0; d < docs.length; ++d) {
      docs[d] = docRng.ints(rag.docTokens(), 0, vocabSize).toArray();
    }
    List<Workload.Request> out = new ArrayList<>(requests);
    for (int i = 0; i < requests; ++i) {
      int[] order = ragPicks(pickRng, rag);
      int[] p = new int[rag.promptTokens()];
      for (int j = 0; j < order.length; ++j) {
        System.arraycopy(docs[order[j]], 0, p, j * rag.docTokens(), rag.docTokens());
      }
      for (int j = rag.docs() * rag.docTokens(); j < p.length; ++j) {
        p[j] = questionRng.nextInt(vocabSize);
      }
      int outLen = output.isFixed() ? output.min() : output.draw(outputRng);
      out.add(new Workload.Request(p, outLen, 0));
    }
    return new BenchWorkload("rag", "rag", out, Double.POSITIVE_INFINITY, seed,
        "SplittableRandom(seed ^ 0x5241470000000000) split into document pool, picks, question and output-length"
            + " streams (Workloads.rag)",
        output.isFixed() ? "fixed" : "uniform", null, 0, rag);
  }

  // The first `docs` entries of a partial Fisher-Yates shuffle of [0, pool).
  private static int[] ragPicks(SplittableRandom rng, BenchWorkload.Rag rag) {
    int[] idx = new int[rag.pool()];
    for (int k = 0; k < idx.length; ++k) {
      idx[k] = k;
    }
    for (int j = 0; j < rag.docs(); ++j) {
      int r = j + rng.nextInt(idx.length - j);
      int tmp = idx[j];
      idx[j] = idx[r];
      idx[r] = tmp;
    }
    return java.util.Arrays.copyOf(idx, rag.docs());
  }

  /**
   * The pp-tg prompts: {@code SplittableRandom(seed ^ PPTG_SALT)} split into the pp stream (one
   * prompt per pp length, in order) and the tg stream (per (context, batch) cell, contexts outer,
   * {@code batch} prompts of {@code context} ids).
   *
   * @return the pp prompts, then one list per tg cell
   */
  public static PpTgPrompts ppTg(int[] pp, int[] tgContexts, int[] tgBatches, long seed, int vocabSize) {
    SplittableRandom root = new SplittableRandom(seed ^ PPTG_SALT);
    SplittableRandom ppRng = root.split();
    SplittableRandom tgRng = root.split();
    List<int[]> ppPrompts = new ArrayList<>();
    for (int len : pp) {
      ppPrompts.add(ppRng.ints(len, 0, vocabSize).toArray());
    }
    List<List<int[]>> tg = new ArrayList<>();
    for (int c : tgContexts) {
      for (int b : tgBatches) {
        List<int[]> cell = new ArrayList<>();
        for (int k = 0; k < b; ++k) {
          cell.add(tgRng.ints(c, 0, vocabSize).toArray());
        }
        tg.add(cell);
      }
    }
    return new PpTgPrompts(ppPrompts, tg);
  }

  /** The prompts of a pp-tg matrix (see {@link #ppTg}). */
  public record PpTgPrompts(List<int[]> pp, List<List<int[]>> tg) {}

  /** {@code online-r<rate>}: the rate without trailing zeros ({@code online-r2}, {@code online-r0.5}). */
  public static String onlineLabel(double rate) {
    return "online-r" + new java.math.BigDecimal(String.format(Locale.ROOT, "%.6f", rate)).stripTrailingZeros()
        .toPlainString();
  }

  private static void check(int requests, double rate, int vocabSize) {
    if (requests < 1) {
      throw new IllegalArgumentException("requests=" + requests + " must be >= 1");
    }
    if (!(rate > 0)) {
      throw new IllegalArgumentException("rate=" + rate + " requests/s must be > 0 (infinite: all at once)");
    }
    if (vocabSize < 1) {
      throw new IllegalArgumentException("vocabSize=" + vocabSize + " must be >= 1");
    }
  }
}
