package io.kvasir.bench.serve;

import io.kvasir.engine.TokenListener;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.LongSupplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Progress of a long run at INFO: requests done of total, elapsed time and the time left
 * estimated as elapsed x left / done; at most one line per interval, and one when the last
 * request finishes. A request is done at its last output token (EOS is ignored in benchmarks).
 */
public final class ProgressLog {
  private static final Logger LOG = LogManager.getLogger(ProgressLog.class);

  private final String label;
  private final int total;
  private final long intervalNanos;
  private final LongSupplier clock;
  private final long start;
  private long lastLog;
  private int done;
  private final List<String> lines = new ArrayList<>();

  /**
   * @param label          what runs (the workload and policy)
   * @param total          requests in the run
   * @param intervalSeconds least time between two lines (the last request always logs)
   * @param clock          monotonic nanoseconds ({@code System::nanoTime})
   */
  public ProgressLog(String label, int total, double intervalSeconds, LongSupplier clock) {
    this.label = label;
    this.total = total;
    this.intervalNanos = (long) (intervalSeconds * 1e9);
    this.clock = clock;
    this.start = clock.getAsLong();
    this.lastLog = start;
  }

  /** One listener per request; request {@code i} is done at its {@code outputTokens.get(i)}-th token. */
  public List<TokenListener> listeners(List<Integer> outputTokens) {
    List<TokenListener> out = new ArrayList<>(outputTokens.size());
    for (int want : outputTokens) {
      int[] count = {0};
      out.add((token, text) -> {
        if (++count[0] == want) {
          requestDone();
        }
      });
    }
    return out;
  }

  /** Counts one finished request and logs when the interval has passed or it was the last. */
  public synchronized void requestDone() {
    ++done;
    long now = clock.getAsLong();
    if (done < total && now - lastLog < intervalNanos) {
      return;
    }
    lastLog = now;
    double elapsed = (now - start) / 1e9;
    double eta = done > 0 ? elapsed * (total - done) / done : Double.NaN;
    String line = String.format(Locale.ROOT, "%s: %d/%d requests done, %.1f s elapsed, ETA %.1f s", label, done, total,
        elapsed, eta);
    lines.add(line);
    LOG.info(line);
  }

  public synchronized int done() {
    return done;
  }

  /** The lines logged so far (tests). */
  public synchronized List<String> lines() {
    return List.copyOf(lines);
  }
}
