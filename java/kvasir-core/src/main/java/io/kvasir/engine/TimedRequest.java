package io.kvasir.engine;

import java.util.Objects;

/**
 * A request that arrives some time after a {@link Engine#serve} call starts (online serving
 * benchmarks: Poisson arrivals); it is not scheduled before then.
 *
 * @param arrivalNanos offset of its arrival from the start of the call (>= 0)
 */
public record TimedRequest(GenerationRequest request, long arrivalNanos) {
  public TimedRequest {
    Objects.requireNonNull(request, "request");
    if (arrivalNanos < 0) {
      throw new IllegalArgumentException("arrival offset " + arrivalNanos + " ns must be >= 0");
    }
  }

  /** A request arriving {@code seconds} after the start of the call. */
  public static TimedRequest at(double seconds, GenerationRequest request) {
    if (!(seconds >= 0) || Double.isInfinite(seconds)) {
      throw new IllegalArgumentException("arrival offset " + seconds + " s must be finite and >= 0");
    }
    return new TimedRequest(request, Math.round(seconds * 1e9));
  }
}
