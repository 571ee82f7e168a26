package io.kvasir.engine;

/**
 * Receives one {@link EngineLoop} request's output as it is produced. Every method runs on the
 * loop's thread, between steps of the whole batch: it must not block (hand the data to another
 * thread, e.g. an HTTP writer's queue). A method that throws fails its request (it is cancelled
 * and {@link #onError} is called once); the loop and the other requests go on.
 *
 * <p>Order per request: {@code onToken} calls of each sample in token order (samples interleave),
 * then exactly one terminal call per sample: {@code onFinish}, or one {@code onError} for the
 * whole request (after which no sample gets {@code onFinish}).
 */
public interface StreamListener {
  /**
   * A generated token of sample {@code sample} (0..n-1). Stop tokens are not reported.
   *
   * @param textDelta the new text it completes (may be empty while a multi-byte character is
   *                  incomplete, or cut before a stop string); null when the engine has no tokenizer
   * @param logprobs  null unless the request asked for them ({@link GenerationRequest#withLogprobs})
   */
  void onToken(int sample, int token, String textDelta, TokenLogprobs logprobs);

  /**
   * Sample {@code sample} ended; {@code result} holds all of its tokens and text. Its finish
   * reason is {@link FinishReason#CANCELLED} when it was cancelled or shut down.
   */
  void onFinish(int sample, GenerationResult result);

  /**
   * The request failed (a step threw, or this listener did); its pages are freed and no further
   * call comes for it.
   */
  default void onError(Throwable error) {}
}
