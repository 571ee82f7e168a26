package io.kvasir.bench.tasks;

import java.io.IOException;
import java.io.Writer;
import java.util.ArrayDeque;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Writes a stream of records as JSON lines: generated in parallel in chunks of consecutive
 * records, written strictly in index order, so the bytes are the same for any thread count.
 * A bounded window of chunks is in flight, so an endless stream runs in constant memory.
 */
public final class TaskStream {
  private static final Logger LOG = LogManager.getLogger(TaskStream.class);
  /** Output is flushed at most this often (and at the end), not per record. */
  private static final long FLUSH_NANOS = 200_000_000L;
  /** About this many prompt tokens per chunk of work (64 short records, or one 64k-token record). */
  private static final int CHUNK_TOKENS = 65_536;

  private TaskStream() {}

  private record Chunk(long records, Future<String> lines) {}

  /**
   * Writes records {@code 0 .. count-1} of the spec ({@code count < 0}: until the writer fails,
   * e.g. the reader closed the pipe).
   *
   * @return the records written
   * @throws IOException from the writer (a closed pipe ends the stream this way)
   * @throws IllegalArgumentException when a record cannot be generated (too small a length)
   */
  public static long write(TaskGenerator generator, StreamSpec spec, long count, int threads, Writer out)
      throws IOException {
    if (threads < 1) {
      throw new IllegalArgumentException("threads " + threads + " must be >= 1");
    }
    int chunk = Math.max(1, Math.min(64, CHUNK_TOKENS / spec.maxLength()));
    AtomicInteger threadIds = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "kvasir-tasks-" + threadIds.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    ArrayDeque<Chunk> window = new ArrayDeque<>();
    long submitted = 0;
    long written = 0;
    long bytes = 0;
    long start = System.nanoTime();
    long lastFlush = start;
    try {
      while (count < 0 || submitted < count || !window.isEmpty()) {
        while ((count < 0 || submitted < count) && window.size() < threads * 4) {
          long from = submitted;
          long to = count < 0 ? from + chunk : Math.min(count, from + chunk);
          window.add(new Chunk(to - from, pool.submit(() -> lines(generator, spec, from, to))));
          submitted = to;
        }
        Chunk next = window.poll();
        String lines = take(next.lines());
        out.write(lines);
        bytes += ApproxTokenCounter.utf8Bytes(lines);
        written += next.records();
        long now = System.nanoTime();
        if (now - lastFlush >= FLUSH_NANOS) {
          out.flush();
          lastFlush = now;
        }
      }
      out.flush();
    } finally {
      pool.shutdownNow();
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    LOG.info("wrote {} records, {} MB of JSONL in {} s ({} MB/s, {} threads)", written,
        String.format("%.1f", bytes / 1e6), String.format("%.2f", seconds), String.format("%.2f", bytes / 1e6 / seconds),
        threads);
    return written;
  }

  private static String lines(TaskGenerator generator, StreamSpec spec, long from, long to) {
    StringBuilder sb = new StringBuilder();
    for (long i = from; i < to; ++i) {
      StreamSpec.Plan p = spec.plan(i);
      TaskRecord r;
      try {
        r = generator.generate(p.task(), p.seed(), p.length());
      } catch (LengthTooSmallException e) {
        if (!spec.isRange()) {
          throw e;
        }
        // A drawn length below what this task needs: the task's smallest prompt instead, so a
        // mixture over a wide range never fails on its short end (still deterministic).
        r = generator.generate(p.task(), p.seed(), e.minimum());
      }
      sb.append(r.toJson()).append('\n');
    }
    return sb.toString();
  }

  private static String take(Future<String> f) {
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while generating records", e);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException(e.getCause());
    }
  }
}
