package io.kvasir.engine;

import io.kvasir.nativeapi.StepBatch;
import java.util.ArrayList;
import java.util.List;

/**
 * What one request has produced so far, and the rules that end it, shared by both ways the
 * engine runs requests ({@link BatchRun} on slot caches, {@link PagedRun} under a cache policy):
 * an EOS or stop id ends a sequence unseen, a stop string cuts the text before it, and
 * {@code maxTokens} or the context end it with LENGTH.
 */
final class SequenceOutput {
  final GenerationRequest request;
  final TokenListener listener;
  final long requestId;
  final long samplingId;
  int cachedPromptTokens = -1;  // prompt tokens not computed by its first step (prefix cache); -1 until then  // the sampling stream's key: the request id, or the request's sampling key + sample index
  final List<Integer> generated = new ArrayList<>();
  final StringBuilder text = new StringBuilder();
  final TextCodec.Detokenizer detokenizer;
  FinishReason finish;
  boolean sampledAny;    // a token was sampled (times may be 0 on an injected clock)
  long firstTokenNanos;
  long lastTokenNanos;
  private long[] emitNanos = new long[8];  // when each generated token was output (inter-token gaps)
  float[] promptLogits;
  ForcedTokens forced;  // teacher forcing (Engine.forceDecode); null when generating
  StreamListener stream;  // EngineLoop's listener (guarded: never throws), or null
  int sample;             // the sample index reported to stream
  TokenLogprobs logprobs;  // of the token being accepted, when the request wants them

  SequenceOutput(GenerationRequest request, TokenListener listener, long requestId, TextCodec codec) {
    this(request, listener, requestId, 0, codec);
  }

  /** Sample {@code sampleIndex} of the request (n > 1): it draws from key + index when the request has a key. */
  SequenceOutput(GenerationRequest request, TokenListener listener, long requestId, int sampleIndex, TextCodec codec) {
    this.samplingId = request.samplingKey() != null ? request.samplingKey() + sampleIndex : requestId;
    if (!request.stopStrings().isEmpty() && codec == null) {
      throw new IllegalArgumentException("stop strings need a tokenizer; this model has none");
    }
    this.request = request;
    this.listener = listener;
    this.requestId = requestId;
    this.detokenizer = codec == null ? null : codec.newDetokenizer(request.promptTokens());
  }

  StepBatch.Sampling sampling() {
    SamplingParams p = request.sampling();
    return new StepBatch.Sampling(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(), p.seed(),
        samplingId);
  }

  /** Whether {@code token} ends the sequence unseen (EOS unless ignored; explicit stop ids always). */
  boolean isStopToken(int token, int[] eosIds) {
    // ignore_eos ignores the model's EOS ids only; explicit stop tokens still stop (as in vLLM).
    return (!request.ignoreEos() && contains(eosIds, token)) || request.stopTokenIds().contains(token);
  }

  /**
   * A freshly sampled token: a stop token ends the sequence unseen; otherwise it is output, and
   * {@link #finish} is set when a stop string, {@code maxTokens} or the context (more than
   * {@code context} tokens in all) ends the sequence.
   */
  void accept(int token, int[] eosIds, int context) {
    accept(token, eosIds, context, System.nanoTime());
  }

  /** As {@link #accept(int, int[], int)}, the token sampled at {@code now} on the run's clock. */
  void accept(int token, int[] eosIds, int context, long now) {
    if (!sampledAny) {
      sampledAny = true;
      firstTokenNanos = now;
    }
    lastTokenNanos = now;
    if (isStopToken(token, eosIds)) {
      finish = FinishReason.STOP;
      return;
    }
    if (generated.size() == emitNanos.length) {
      emitNanos = java.util.Arrays.copyOf(emitNanos, emitNanos.length * 2);
    }
    emitNanos[generated.size()] = now;
    generated.add(token);
    String delta = detokenizer == null ? null : detokenizer.push(token);
    String visible = delta == null ? null : appendText(delta);
    if (listener != null) {
      listener.onToken(token, visible);
    }
    if (stream != null) {
      stream.onToken(sample, token, visible, logprobs);
    }
    logprobs = null;
    if (visible != null && visible.length() < delta.length()) {
      finish = FinishReason.STOP;  // a stop string: the text ends before it
    } else if (generated.size() >= request.maxTokens() || request.promptTokens().length + generated.size() > context) {
      finish = FinishReason.LENGTH;
    }
  }

  // Appends text up to the first stop string (which ends the output) and returns what was
  // appended. Text is not held back while a stop string might still be forming.
  private String appendText(String delta) {
    int before = text.length();
    text.append(delta);
    int cut = -1;
    for (String stop : request.stopStrings()) {
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

  GenerationResult result(long startNanos, long kvBytesPerToken) {
    return result(startNanos, startNanos, kvBytesPerToken);
  }

  /** The result of a request that arrived at {@code arrival} of a run started at {@code startNanos} (one clock). */
  GenerationResult result(long startNanos, long arrival, long kvBytesPerToken) {
    if (finish == null) {
      finish = FinishReason.LENGTH;
    }
    if (detokenizer != null && finish == FinishReason.LENGTH) {
      text.append(detokenizer.flush());
    }
    int[] tokens = generated.stream().mapToInt(Integer::intValue).toArray();
    int promptLen = request.promptTokens().length;
    double[] gaps = new double[Math.max(0, tokens.length - 1)];
    for (int i = 0; i < gaps.length; ++i) {
      gaps[i] = (emitNanos[i + 1] - emitNanos[i]) / 1e6;
    }
    GenerationStats stats = new GenerationStats(promptLen, tokens.length, (firstTokenNanos - arrival) / 1e6,
        (lastTokenNanos - firstTokenNanos) / 1e6, (long) (promptLen + Math.max(0, tokens.length - 1)) * kvBytesPerToken,
        (arrival - startNanos) / 1e6, gaps, Math.max(0, cachedPromptTokens));
    return new GenerationResult(tokens, detokenizer == null ? null : text.toString(), finish, stats, promptLogits);
  }

  static boolean contains(int[] ids, int token) {
    for (int id : ids) {
      if (id == token) {
        return true;
      }
    }
    return false;
  }
}
