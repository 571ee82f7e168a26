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

  /** One request in flight. */
  private static final class Seq {
    final GenerationRequest request;
    final TokenListener listener;
    final int slot;
    final long requestId;
    final int[] prompt;
    final List<Integer> generated = new ArrayList<>();
    final StringBuilder text = new StringBuilder();
    final TextCodec.Detokenizer detokenizer;
    int prefilled;        // prompt tokens already in the cache
    int nextToken = -1;   // the last generated token, fed to the model next step
    FinishReason finish;
    long firstTokenNanos;
    long lastTokenNanos;
    float[] promptLogits;

    Seq(GenerationRequest request, TokenListener listener, int slot, long requestId, TextCodec codec) {
      this.request = request;
      this.listener = listener;
      this.slot = slot;
      this.requestId = requestId;
      this.prompt = request.promptTokens();
      this.detokenizer = codec == null ? null : codec.newDetokenizer(prompt);
    }

    // Position of the token fed next: the last generated one.
    int feedPosition() {
      return prompt.length + generated.size() - 1;
    }

    StepBatch.Sampling sampling() {
      SamplingParams p = request.sampling();
      return new StepBatch.Sampling(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(), p.seed(),
          requestId);
    }
  }

  private final Model model;
  private final KvCache cache;
  private final TextCodec codec;
  private final int[] eosIds;
  private final int maxStepTokens;

  BatchRun(Model model, KvCache cache, TextCodec codec, int[] eosIds, int maxStepTokens) {
    this.model = model;
    this.cache = cache;
    this.codec = codec;
    this.eosIds = eosIds;
    this.maxStepTokens = maxStepTokens;
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
      if (!r.stopStrings().isEmpty() && codec == null) {
        throw new IllegalArgumentException("stop strings need a tokenizer; this model has none");
      }
      seqs.add(new Seq(r, listeners == null ? null : listeners.get(i), i, firstRequestId + i, codec));
    }
    prefill(seqs);
    while (seqs.stream().anyMatch(s -> s.finish == null)) {
      StepBatch batch = new StepBatch();
      List<Seq> active = new ArrayList<>();
      for (Seq s : seqs) {
        if (s.finish == null) {
          batch.add(s.slot, s.feedPosition(), new int[] {s.nextToken}, s.sampling());
          active.add(s);
        }
      }
      StepResult result = model.step(cache, batch);
      for (int i = 0; i < active.size(); ++i) accept(active.get(i), result.token(i));
    }
    List<GenerationResult> out = new ArrayList<>();
    for (Seq s : seqs) out.add(result(s, start));
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
        batch.add(s.slot, s.prefilled, chunk, s.sampling());
        s.prefilled += take;
        budget -= take;
        if (s.prefilled == s.prompt.length) {
          finishing.add(s);
          finishingIndex.add(index);
          logits |= s.request.returnPromptLogits();
        }
        ++index;
      }
      if (logits) {
        batch.withLogits();
      }
      StepResult result = model.step(cache, batch);
      for (int i = 0; i < finishing.size(); ++i) {
        Seq s = finishing.get(i);
        if (s.request.returnPromptLogits()) {
          s.promptLogits = result.logits(finishingIndex.get(i));
        }
        accept(s, result.token(finishingIndex.get(i)));
      }
      LOG.debug("prefill step of {} tokens", maxStepTokens - budget);
    }
  }

  // A freshly sampled token: a stop token ends the sequence unseen; otherwise it is output, and
  // fed next step unless a stop string, max_tokens or the context ends the sequence.
  private void accept(Seq s, int token) {
    long now = System.nanoTime();
    if (s.firstTokenNanos == 0) {
      s.firstTokenNanos = now;
    }
    s.lastTokenNanos = now;
    // ignore_eos ignores the model's EOS ids only; explicit stop tokens still stop (as in vLLM).
    if ((!s.request.ignoreEos() && contains(eosIds, token)) || s.request.stopTokenIds().contains(token)) {
      s.finish = FinishReason.STOP;
      return;
    }
    s.generated.add(token);
    String delta = s.detokenizer == null ? null : s.detokenizer.push(token);
    String visible = delta == null ? null : appendText(s.text, s.request.stopStrings(), delta);
    if (s.listener != null) {
      s.listener.onToken(token, visible);
    }
    if (visible != null && visible.length() < delta.length()) {
      s.finish = FinishReason.STOP;  // a stop string: the text ends before it
    } else if (s.generated.size() >= s.request.maxTokens() || s.prompt.length + s.generated.size() > cache.capacity()) {
      s.finish = FinishReason.LENGTH;
    } else {
      s.nextToken = token;
    }
  }

  // Appends text up to the first stop string (which ends the output) and returns what was
  // appended. Text is not held back while a stop string might still be forming.
  static String appendText(StringBuilder text, List<String> stopStrings, String delta) {
    int before = text.length();
    text.append(delta);
    int cut = -1;
    for (String stop : stopStrings) {
      int at = text.indexOf(stop, Math.max(0, before - stop.length() + 1));
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
      }
    }
    if (cut < 0) {
      return delta;
    }
    text.setLength(cut);
    return cut > before ? text.substring(before) : "";
  }

  private GenerationResult result(Seq s, long start) {
    if (s.detokenizer != null && s.finish == FinishReason.LENGTH) {
      s.text.append(s.detokenizer.flush());
    }
    int[] tokens = s.generated.stream().mapToInt(Integer::intValue).toArray();
    GenerationStats stats = new GenerationStats(s.prompt.length, tokens.length,
        (s.firstTokenNanos - start) / 1e6, (s.lastTokenNanos - s.firstTokenNanos) / 1e6,
        (long) (s.prompt.length + Math.max(0, tokens.length - 1)) * model.shape().kvBytesPerToken());
    return new GenerationResult(tokens, s.detokenizer == null ? null : s.text.toString(), s.finish, stats,
        s.promptLogits);
  }

  private static boolean contains(int[] ids, int token) {
    for (int id : ids) {
      if (id == token) {
        return true;
      }
    }
    return false;
  }
}
