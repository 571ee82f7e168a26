package io.kvasir.sched;

import java.util.Arrays;
import java.util.function.IntPredicate;

/**
 * A request as the scheduler sees it: token ids in, token ids out.
 *
 * @param id           unique among live requests
 * @param prompt       prompt token ids (not empty)
 * @param maxNewTokens output tokens at most (>= 1)
 * @param stop         tokens that end the output (included in it), e.g. EOS; may be null
 * @param extraKey     what else the KV depends on, for the prefix cache (0: nothing)
 * @param sampleIds    further samples of the same prompt ({@code n > 1}): their sequence ids,
 *                     unique among live requests. They share the prompt's pages and each samples
 *                     its own output; each finishes under its own id. Empty for one sample.
 */
public record SchedRequest(long id, int[] prompt, int maxNewTokens, IntPredicate stop, long extraKey,
    long[] sampleIds) {
  /** One sample. */
  public SchedRequest(long id, int[] prompt, int maxNewTokens, IntPredicate stop, long extraKey) {
    this(id, prompt, maxNewTokens, stop, extraKey, new long[0]);
  }

  public SchedRequest {
    if (prompt == null || prompt.length == 0) {
      throw new IllegalArgumentException("request " + id + ": the prompt is empty");
    }
    if (maxNewTokens < 1) {
      throw new IllegalArgumentException("request " + id + ": maxNewTokens=" + maxNewTokens + " must be >= 1");
    }
    prompt = Arrays.copyOf(prompt, prompt.length);
    sampleIds = sampleIds == null ? new long[0] : sampleIds.clone();
    for (long sid : sampleIds) {
      if (sid == id) {
        throw new IllegalArgumentException("request " + id + ": a further sample reuses the request's own id");
      }
    }
  }

  /** Samples of the prompt: 1 plus the further ones. */
  public int n() {
    return 1 + sampleIds.length;
  }
}
