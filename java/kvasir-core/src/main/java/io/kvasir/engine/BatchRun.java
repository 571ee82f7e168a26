package io.kvasir.engine;

import io.kvasir.nativeapi.KvCache;
import io.kvasir.nativeapi.Model;
import io.kvasir.nativeapi.StepBatch;
import io.kvasir.nativeapi.StepResult;
import java.util.ArrayList;
import java.util.List;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Runs a group of requests together, each in its own cache slot: prompts are prefilled in chunks
 * packed into steps of at most {@code maxStepTokens} tokens, then every unfinished sequence
 * decodes one token per step, all in one native call per step. (Static batching: the
 * continuous-batching scheduler of the paged cache replaces it.)
 */
final class BatchRun {
  private static final Logger LOG = LogManager.getLogger(BatchRun.class);

  /** One request in flight: its output so far, its slot and how far its prompt is cached. */
  private static final class Seq {
    final SequenceOutput out;
    final int slot;
    final int[] prompt;
    int prefilled;        // prompt tokens already in the cache
    int nextToken = -1;   // the last generated token, fed to the model next step

    Seq(SequenceOutput out, int slot) {
      this.out = out;
      this.slot = slot;
      this.prompt = out.request.promptTokens();
    }

    // Position of the token fed next: the last generated one.
    int feedPosition() {
      return prompt.length + out.generated.size() - 1;
    }
  }

  private final Model model;
  private final KvCache cache;
  private final TextCodec codec;
  private final int[] eosIds;
  private final int maxStepTokens;
  private List<ForcedTokens> forced;  // per request, or null: teacher forcing (Engine.forceDecode)

  BatchRun(Model model, KvCache cache, TextCodec codec, int[] eosIds, int maxStepTokens) {
    this.model = model;
    this.cache = cache;
    this.codec = codec;
    this.eosIds = eosIds;
    this.maxStepTokens = maxStepTokens;
  }

  /** Teacher forcing: request {@code i} commits {@code perRequest.get(i).tokens} in place of what it samples. */
  BatchRun withForcedTokens(List<ForcedTokens> perRequest) {
    this.forced = perRequest;
    return this;
  }

  List<GenerationResult> run(List<GenerationRequest> requests, List<TokenListener> listeners, long firstRequestId) {
    if (requests.size() > cache.slots()) {
      throw new IllegalArgumentException(requests.size() + " requests do not fit the " + cache.slots() + " cache slots");
    }
    final long start = System.nanoTime();
    List<Seq> seqs = new ArrayList<>();
    for (int i = 0; i < requests.size(); ++i) {
      GenerationRequest r = requests.get(i);
      if (r.promptTokens().length >= cache.capacity()) {
        throw new IllegalArgumentException("the prompt has " + r.promptTokens().length + " tokens; the context holds "
            + cache.capacity() + " (prompt plus at least one generated token)");
      }
      SequenceOutput out = new SequenceOutput(r, listeners == null ? null : listeners.get(i), firstRequestId + i, codec);
      out.forced = forced == null ? null : forced.get(i);
      seqs.add(new Seq(out, i));
    }
    boolean anyForced = seqs.stream().anyMatch(s -> s.out.forced != null);
    prefill(seqs);
    while (seqs.stream().anyMatch(s -> s.out.finish == null)) {
      StepBatch batch = new StepBatch();
      if (anyForced) {
        batch.withLogits();
      }
      List<Seq> active = new ArrayList<>();
      for (Seq s : seqs) {
        if (s.out.finish == null) {
          batch.add(s.slot, s.feedPosition(), new int[] {s.nextToken}, s.out.sampling());
          active.add(s);
        }
      }
      StepResult result = model.step(cache, batch);
      for (int i = 0; i < active.size(); ++i) accept(active.get(i), result, i);
    }
    List<GenerationResult> out = new ArrayList<>();
    for (Seq s : seqs) out.add(s.out.result(start, model.shape().kvBytesPerToken()));
    return out;
  }

  // Prompt chunks, packed into steps: a sequence's last chunk samples its first token.
  private void prefill(List<Seq> seqs) {
    while (seqs.stream().anyMatch(s -> s.prefilled < s.prompt.length)) {
      StepBatch batch = new StepBatch();
      List<Seq> finishing = new ArrayList<>();
      List<Integer> finishingIndex = new ArrayList<>();
      int budget = maxStepTokens;
      int index = 0;
      boolean logits = false;
      for (Seq s : seqs) {
        int remaining = s.prompt.length - s.prefilled;
        if (remaining == 0 || budget == 0) {
          continue;
        }
        int take = Math.min(remaining, budget);
        int[] chunk = java.util.Arrays.copyOfRange(s.prompt, s.prefilled, s.prefilled + take);
        batch.add(s.slot, s.prefilled, chunk, s.out.sampling());
        s.prefilled += take;
        budget -= take;
        if (s.prefilled == s.prompt.length) {
          finishing.add(s);
          finishingIndex.add(index);
          logits |= s.out.request.returnPromptLogits() || s.out.forced != null;
        }
        ++index;
      }
      if (logits) {
        batch.withLogits();
      }
      StepResult result = model.step(cache, batch);
      for (int i = 0; i < finishing.size(); ++i) {
        Seq s = finishing.get(i);
        if (s.out.request.returnPromptLogits()) {
          s.out.promptLogits = result.logits(finishingIndex.get(i));
        }
        accept(s, result, finishingIndex.get(i));
      }
      LOG.debug("prefill step of {} tokens", maxStepTokens - budget);
    }
  }

  // A freshly sampled token (or the forced one in its place); an unfinished sequence feeds it next step.
  private void accept(Seq s, StepResult result, int index) {
    int token = result.token(index);
    if (s.out.forced != null && !s.out.forced.done()) {
      token = s.out.forced.force(result.logits(index));
    }
    s.out.accept(token, eosIds, cache.capacity());
    if (s.out.finish == null) {
      s.nextToken = token;
    }
  }
}
