package io.kvasir.server;

import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.StreamListener;
import io.kvasir.engine.TokenLogprobs;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The bridge from the engine loop's thread to an HTTP exchange's thread: the listener only
 * enqueues (never blocks the loop); the exchange takes events in order and writes them.
 */
final class RequestEvents implements StreamListener {
  /** One thing that happened to the request. */
  sealed interface Event permits Token, Finish, Failure {}

  record Token(int sample, int token, String textDelta, TokenLogprobs logprobs) implements Event {}

  record Finish(int sample, GenerationResult result) implements Event {}

  record Failure(Throwable error) implements Event {}

  private final BlockingQueue<Event> queue = new LinkedBlockingQueue<>();

  @Override
  public void onToken(int sample, int token, String textDelta, TokenLogprobs logprobs) {
    queue.add(new Token(sample, token, textDelta, logprobs));
  }

  @Override
  public void onFinish(int sample, GenerationResult result) {
    queue.add(new Finish(sample, result));
  }

  @Override
  public void onError(Throwable error) {
    queue.add(new Failure(error));
  }

  /** The next event, or null after the timeout. */
  Event poll(long timeout, TimeUnit unit) throws InterruptedException {
    return queue.poll(timeout, unit);
  }

  /** The next event if one is queued, else null. */
  Event pollNow() {
    return queue.poll();
  }
}
