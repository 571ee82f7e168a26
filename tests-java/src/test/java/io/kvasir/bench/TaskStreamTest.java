package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.bench.tasks.ApproxTokenCounter;
import io.kvasir.bench.tasks.Haystack;
import io.kvasir.bench.tasks.StreamSpec;
import io.kvasir.bench.tasks.Task;
import io.kvasir.bench.tasks.TaskGenerator;
import io.kvasir.bench.tasks.TaskRecord;
import io.kvasir.bench.tasks.TaskStream;
import java.io.IOException;
import java.io.StringWriter;
import java.io.Writer;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Streams: the same bytes for any thread count, mixture weights, length ranges, and a reader that goes away. */
class TaskStreamTest {
  private static final String MIX = "passkey=0.2,niah_multikey=0.2,arithmetic=0.3,docqa=0.1,kv_retrieval=0.1,"
      + "variable_tracking=0.05,niah_multivalue=0.05";

  @TempDir
  static Path tmp;

  static Haystack haystack;

  @BeforeAll
  static void writeHaystack() {
    haystack = Haystack.load(BenchFixtures.haystack(tmp));
  }

  private static String stream(TaskGenerator g, StreamSpec spec, long count, int threads) throws IOException {
    StringWriter out = new StringWriter();
    assertEquals(count, TaskStream.write(g, spec, count, threads, out));
    return out.toString();
  }

  @Test
  void theStreamIsTheSameForAnyThreadCount() throws IOException {
    StreamSpec spec = StreamSpec.mixture(MIX, 400, 3000, 1000);
    TaskGenerator approx = new TaskGenerator(haystack, ApproxTokenCounter.INSTANCE, null);
    String one = stream(approx, spec, 150, 1);
    assertEquals(one, stream(approx, spec, 150, 3));
    assertEquals(one, stream(new TaskGenerator(haystack, ApproxTokenCounter.INSTANCE, null), spec, 150, 2),
        "a fresh generator (cold count cache) writes the same");
    List<String> lines = one.lines().toList();
    assertEquals(150, lines.size());
    for (int i = 0; i < lines.size(); ++i) {
      TaskRecord r = TaskRecord.fromJson(lines.get(i));
      assertEquals(1000 + i, r.seed(), "record i has seed base + i");
      assertTrue(r.length() >= 400 && r.length() <= 3000, "length " + r.length());
    }
    TaskGenerator exact = new TaskGenerator(haystack, BenchFixtures.qwen3(), null);
    StreamSpec small = StreamSpec.mixture(MIX, 300, 1200, 7);
    assertEquals(stream(exact, small, 40, 1), stream(exact, small, 40, 2));
  }

  @Test
  void aMixtureOverAWideRangeGivesShortLengthsTheTasksSmallestPrompt() throws IOException {
    // 16..64 tokens is below what niah_multikey and docqa need; a fixed length that small is an error,
    // a drawn one becomes the task's smallest prompt, so training streams over 64:8000 never fail.
    StreamSpec spec = StreamSpec.mixture("niah_multikey=0.5,docqa=0.3,arithmetic=0.2", 16, 64, 300);
    TaskGenerator approx = new TaskGenerator(haystack, ApproxTokenCounter.INSTANCE, null);
    List<String> lines = stream(approx, spec, 60, 2).lines().toList();
    assertEquals(60, lines.size());
    int raised = 0;
    for (String line : lines) {
      TaskRecord r = TaskRecord.fromJson(line);
      assertTrue(r.promptTokens() <= r.length(), "prompt within its recorded length: " + r.promptTokens() + " vs "
          + r.length());
      if (!"arithmetic".equals(r.task()) && r.length() > 64) {
        ++raised;
        assertEquals(r.length(), r.promptTokens(), "the raised length is the smallest prompt's size");
      }
    }
    assertTrue(raised > 0, "some records needed the raise");
    assertThrows(IllegalArgumentException.class, () -> approx.generate(Task.NIAH_MULTIKEY, 1, 40),
        "a fixed length below the minimum is still an error");
  }

  @Test
  void mixtureCountsFollowTheWeights() {
    StreamSpec spec = StreamSpec.mixture(MIX, 1000, 1000, 5);
    Map<Task, Integer> counts = new EnumMap<>(Task.class);
    int n = 2000;
    for (int i = 0; i < n; ++i) counts.merge(spec.plan(i).task(), 1, Integer::sum);
    for (Task t : Task.values()) {
      double p = spec.weight(t);
      double expected = n * p;
      double sigma = Math.sqrt(n * p * (1 - p));
      int got = counts.getOrDefault(t, 0);
      assertTrue(Math.abs(got - expected) <= 4 * sigma + 1e-9, t + ": " + got + " of " + n + ", expected " + expected);
    }
    assertEquals(0, counts.getOrDefault(Task.NIAH_SINGLE, 0));
    // Unnormalized weights mean the same.
    StreamSpec scaled = StreamSpec.mixture("passkey=2,arithmetic=6", 100, 100, 0);
    assertEquals(0.25, scaled.weight(Task.PASSKEY), 1e-12);
    assertEquals(spec.plan(17), StreamSpec.mixture(MIX, 1000, 1000, 5).plan(17), "a plan depends on the seed only");
    assertEquals(spec.plan(17).seed(), StreamSpec.mixture(MIX, 1000, 1000, 0).plan(22).seed());
    assertEquals(spec.plan(17), StreamSpec.mixture(MIX, 1000, 1000, 0).plan(22), "the same seed, the same plan");
  }

  @Test
  void lengthsAreLogUniformInTheRange() {
    StreamSpec spec = StreamSpec.of(Task.PASSKEY, 1000, 64000, 0);
    int below8k = 0;
    int n = 4000;
    for (int i = 0; i < n; ++i) {
      int length = spec.plan(i).length();
      assertTrue(length >= 1000 && length <= 64000, "length " + length);
      if (length < 8000) {
        ++below8k;
      }
    }
    // log(8000/1000) / log(64000/1000) = 0.5 of the mass.
    double sigma = Math.sqrt(n * 0.25);
    assertEquals(n / 2.0, below8k, 4 * sigma);
  }

  @Test
  void badMixturesAreRefusedByName() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> StreamSpec.mixture("passkey=1,nope=2", 100, 100, 0));
    assertTrue(e.getMessage().contains("nope"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> StreamSpec.mixture("passkey=x", 100, 100, 0));
    assertTrue(e.getMessage().contains("passkey"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> StreamSpec.mixture("passkey=0", 100, 100, 0));
    assertTrue(e.getMessage().contains("positive"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> StreamSpec.mixture("passkey=1", 200, 100, 0));
    assertTrue(e.getMessage().contains("200:100"), e.getMessage());
  }

  @Test
  void anEndlessStreamEndsWhenTheReaderGoesAway() {
    TaskGenerator g = new TaskGenerator(haystack, ApproxTokenCounter.INSTANCE, null);
    StreamSpec spec = StreamSpec.mixture(MIX, 300, 600, 0);
    Writer closing = new Writer() {
      long chars;

      @Override
      public void write(char[] buf, int off, int len) throws IOException {
        chars += len;
        if (chars > 200_000) {
          throw new IOException("Broken pipe");
        }
      }

      @Override
      public void flush() {}

      @Override
      public void close() {}
    };
    IOException e = assertThrows(IOException.class, () -> TaskStream.write(g, spec, -1, 2, closing));
    assertEquals("Broken pipe", e.getMessage());
  }
}
