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
 */
public record SchedRequest(long id, int[] prompt, int maxNewTokens, IntPredicate stop, long extraKey) {
  public SchedRequest {
    if (prompt == null || prompt.length == 0) {
      throw new IllegalArgumentException("request " + id + ": the prompt is empty");
    }
    if (maxNewTokens < 1) {
      throw new IllegalArgumentException("request " + id + ": maxNewTokens=" + maxNewTokens + " must be >= 1");
    }
    prompt = Arrays.copyOf(prompt, prompt.length);
  }
}
