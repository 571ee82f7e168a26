package io.kvasir.bench.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The seeded serving workload: reproducible, in range, prefixes shared, subsamples and exports exact. */
class WorkloadTest {
  private static final double INF = Double.POSITIVE_INFINITY;
  private final long seed = new SplittableRandom().nextLong();

  private static WorkloadSpec spec(int n, int min, int max, int shared, double rate, long seed) {
    return new WorkloadSpec(n, min, max, 7, shared, rate, seed, 1000);
  }

  @Test
  void theSameSeedGivesTheSameRequestsAndLengthsAndIdsStayInRange() {
    Workload a = Workload.generate(spec(400, 3, 9, 0, INF, seed));
    Workload b = Workload.generate(spec(400, 3, 9, 0, INF, seed));
    Workload c = Workload.generate(spec(400, 3, 9, 0, INF, seed + 1));
    boolean differs = false;
    boolean sawMin = false;
    boolean sawMax = false;
    for (int i = 0; i < 400; ++i) {
      int[] p = a.requests().get(i).prompt();
      assertArrayEquals(p, b.requests().get(i).prompt(), "seed " + seed + ", request " + i);
      differs |= !Arrays.equals(p, c.requests().get(i).prompt());
      assertTrue(p.length >= 3 && p.length <= 9, "seed " + seed + ": length " + p.length);
      sawMin |= p.length == 3;
      sawMax |= p.length == 9;
      for (int id : p) {
        assertTrue(id >= 0 && id < 1000, "seed " + seed + ": id " + id);
      }
      assertEquals(7, a.requests().get(i).outputTokens());
      assertEquals(0.0, a.requests().get(i).arrivalSeconds(), "offline: all at once");
    }
    assertTrue(sawMin && sawMax, "seed " + seed + ": both ends of [3, 9] should occur in 400 draws");
    assertTrue(differs, "another seed, other prompts");
    assertEquals(a.requests().stream().mapToLong(Workload.Request::promptTokens).sum(), a.promptTokens());
  }

  @Test
  void aSharedPrefixIsSharedAndTheRestIsNot() {
    Workload w = Workload.generate(spec(50, 4, 12, 32, INF, seed));
    int[] first = w.requests().get(0).prompt();
    int[] prefix = Arrays.copyOf(first, 32);
    int distinctTails = 0;
    for (Workload.Request r : w.requests()) {
      int[] p = r.prompt();
      assertTrue(p.length >= 32 + 4 && p.length <= 32 + 12, "seed " + seed + ": length " + p.length);
      assertArrayEquals(prefix, Arrays.copyOf(p, 32), "seed " + seed);
      if (!Arrays.equals(Arrays.copyOfRange(p, 32, p.length), Arrays.copyOfRange(first, 32, first.length))) {
        ++distinctTails;
      }
    }
    assertEquals(49, distinctTails, "seed " + seed + ": unique parts differ");
    // The warm-up shares neither the prefix nor any prompt.
    for (Workload.Request r : w.warmup(5).requests()) {
      assertFalse(Arrays.equals(prefix, Arrays.copyOf(r.prompt(), 32)), "seed " + seed);
      assertTrue(r.promptTokens() >= 36 && r.promptTokens() <= 44 && r.outputTokens() == 7);
    }
  }

  @Test
  void subsamplesAreTheFirstRequestsAndTheRateMovesOnlyArrivals() {
    Workload full = Workload.generate(spec(64, 10, 90, 0, 3.0, seed));
    Workload small = Workload.generate(spec(8, 10, 90, 0, 3.0, seed));
    Workload offline = Workload.generate(spec(64, 10, 90, 0, INF, seed));
    Workload first = full.first(8);
    assertEquals(8, first.requests().size());
    assertEquals(8, first.spec().requests());
    for (int i = 0; i < 8; ++i) {
      assertArrayEquals(small.requests().get(i).prompt(), first.requests().get(i).prompt(), "seed " + seed);
      assertEquals(small.requests().get(i).arrivalSeconds(), first.requests().get(i).arrivalSeconds());
    }
    for (int i = 0; i < 64; ++i) {
      assertArrayEquals(offline.requests().get(i).prompt(), full.requests().get(i).prompt(), "seed " + seed);
    }
    assertSame(full, full.first(1000));
    assertThrows(IllegalArgumentException.class, () -> full.first(0));
  }

  @Test
  void arrivalsArePoissonAtTheRate() {
    double rate = 25;
    List<Workload.Request> rs = Workload.generate(spec(4000, 1, 2, 0, rate, seed)).requests();
    assertEquals(0.0, rs.get(0).arrivalSeconds());
    double sumGap = 0;
    double sumSq = 0;
    for (int i = 1; i < rs.size(); ++i) {
      double gap = rs.get(i).arrivalSeconds() - rs.get(i - 1).arrivalSeconds();
      assertTrue(gap >= 0, "seed " + seed + ": arrivals out of order at " + i);
      sumGap += gap;
      sumSq += gap * gap;
    }
    int n = rs.size() - 1;
    double mean = sumGap / n;
    double sd = Math.sqrt(sumSq / n - mean * mean);
    // Exponential gaps: mean and standard deviation both 1/rate (the mean's own sd is 1.6% here).
    assertEquals(1 / rate, mean, 0.1 / rate, "seed " + seed);
    assertEquals(1 / rate, sd, 0.15 / rate, "seed " + seed);
  }

  @Test
  void theExportHoldsTheExactRequests(@TempDir Path tmp) throws Exception {
    Workload w = Workload.generate(spec(12, 5, 40, 16, 2.5, seed));
    Path file = tmp.resolve("w.json");
    w.export(file);
    JsonNode root = new ObjectMapper().readTree(file.toFile());
    assertEquals(Workload.FORMAT, root.get("format").asText());
    assertEquals(seed, root.get("seed").asLong());
    assertEquals(16, root.get("shared_prefix_tokens").asInt());
    assertEquals(12, root.get("requests").size());
    for (int i = 0; i < 12; ++i) {
      JsonNode r = root.get("requests").get(i);
      int[] ids = new int[r.get("prompt").size()];
      for (int j = 0; j < ids.length; ++j) {
        ids[j] = r.get("prompt").get(j).asInt();
      }
      assertArrayEquals(w.requests().get(i).prompt(), ids);
      assertEquals(7, r.get("output_tokens").asInt());
      assertEquals(w.requests().get(i).arrivalSeconds(), r.get("arrival_s").asDouble());
    }
    assertTrue(Workload.generate(spec(3, 1, 1, 0, INF, seed)).spec().offline());
    assertNotEquals(0, w.requests().get(11).arrivalSeconds());
  }

  @Test
  void badSpecsAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> spec(0, 1, 2, 0, INF, 1));
    assertThrows(IllegalArgumentException.class, () -> spec(1, 5, 4, 0, INF, 1));
    assertThrows(IllegalArgumentException.class, () -> spec(1, 0, 4, 0, INF, 1));
    assertThrows(IllegalArgumentException.class, () -> spec(1, 1, 4, -1, INF, 1));
    assertThrows(IllegalArgumentException.class, () -> spec(1, 1, 4, 0, 0, 1));
    assertThrows(IllegalArgumentException.class, () -> spec(1, 1, 4, 0, Double.NaN, 1));
  }
}
