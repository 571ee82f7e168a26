package io.kvasir.bench;

import io.kvasir.engine.Engine;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Perplexity of a token stream over non-overlapping windows: each window is scored on its own
 * (no context from the previous one), every token after the window's first predicted from the
 * tokens before it ({@link Engine#scoreTokens}).
 */
final class Perplexity {
  private static final Logger LOG = LogManager.getLogger(Perplexity.class);
  private static final long PROGRESS_NANOS = 30_000_000_000L;

  /**
   * @param windows       windows scored (the last may be shorter than the window size)
   * @param scoredTokens  tokens whose log-probability was taken (each window's length minus one)
   * @param meanNll       mean negative log-likelihood per scored token (nats)
   */
  record Result(int windows, long scoredTokens, double meanNll, double seconds) {
    double perplexity() {
      return Math.exp(meanNll);
    }
  }

  private Perplexity() {}

  /** Windows of {@code window} tokens; a last piece shorter than 2 tokens is dropped (nothing to score). */
  static List<int[]> windows(int[] tokens, int window) {
    if (window < 2) {
      throw new IllegalArgumentException("window " + window + " must be >= 2 tokens");
    }
    List<int[]> out = new ArrayList<>();
    for (int from = 0; from + 1 < tokens.length; from += window) {
      out.add(Arrays.copyOfRange(tokens, from, Math.min(tokens.length, from + window)));
    }
    return out;
  }

  static Result compute(Engine engine, int[] tokens, int window) {
    List<int[]> windows = windows(tokens, window);
    if (windows.isEmpty()) {
      throw new IllegalArgumentException("the text has " + tokens.length + " tokens; at least 2 are needed");
    }
    long start = System.nanoTime();
    long lastLog = start;
    double nll = 0;
    long scored = 0;
    int group = engine.maxBatch();
    for (int from = 0; from < windows.size(); from += group) {
      List<float[]> logprobs = engine.scoreTokens(windows.subList(from, Math.min(windows.size(), from + group)));
      for (float[] lp : logprobs) {
        for (float x : lp) nll -= x;
        scored += lp.length;
      }
      long now = System.nanoTime();
      int done = Math.min(windows.size(), from + group);
      if (now - lastLog >= PROGRESS_NANOS || done == windows.size()) {
        LOG.info("perplexity: {}/{} windows, {} tokens, running perplexity {}", done, windows.size(), scored,
            String.format("%.3f", Math.exp(nll / scored)));
        lastLog = now;
      }
    }
    return new Result(windows.size(), scored, nll / scored, (System.nanoTime() - start) / 1e9);
  }
}
