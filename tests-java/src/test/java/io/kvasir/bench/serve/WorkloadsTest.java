package io.kvasir.bench.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The generators of {@code kvasir-bench run}: lengths, arrivals, the RAG document pool, the seed rule. */
class WorkloadsTest {
  private static final double INF = Double.POSITIVE_INFINITY;

  @TempDir
  Path tmp;

  @Test
  void lengthsAreFixedOrInTheirRange() {
    long seed = new SplittableRandom().nextLong();
    BenchWorkload fixed = Workloads.standard("offline", "offline", 50, LengthSpec.fixed(100), LengthSpec.fixed(7), null,
        0, INF, seed, 1000);
    for (Workload.Request r : fixed.requests()) {
      assertEquals(100, r.promptTokens());
      assertEquals(7, r.outputTokens());
      assertEquals(0, r.arrivalSeconds());
    }
    assertEquals("fixed", fixed.lengths());
    BenchWorkload range = Workloads.standard("offline", "offline", 400, new LengthSpec(10, 20), new LengthSpec(3, 5),
        null, 6, INF, seed, 1000);
    Set<Integer> prompts = new HashSet<>();
    Set<Integer> outputs = new HashSet<>();
    int[] prefix = Arrays.copyOf(range.requests().get(0).prompt(), 6);
    for (Workload.Request r : range.requests()) {
      assertTrue(r.promptTokens() >= 16 && r.promptTokens() <= 26, "seed " + seed + ": " + r.promptTokens());
      assertArrayEquals(prefix, Arrays.copyOf(r.prompt(), 6), "the shared prefix");
      prompts.add(r.promptTokens() - 6);
      outputs.add(r.outputTokens());
    }
    // 400 draws of 11 values: every one shows up (a miss has probability < 11 * (10/11)^400).
    assertEquals(11, prompts.size(), "seed " + seed + ": " + prompts);
    assertEquals(Set.of(3, 4, 5), outputs, "seed " + seed);
    assertEquals("uniform", range.lengths());
  }

  @Test
  void aFixedOutputIsServesRuleExactly() {
    long seed = new SplittableRandom().nextLong();
    Workload serve = Workload.generate(new WorkloadSpec(20, 5, 40, 9, 12, 3.5, seed, 777));
    BenchWorkload run = Workloads.standard("online", "online-r3.5", 20, new LengthSpec(5, 40), LengthSpec.fixed(9), null,
        12, 3.5, seed, 777);
    for (int i = 0; i < 20; ++i) {
      assertArrayEquals(serve.requests().get(i).prompt(), run.requests().get(i).prompt(), "seed " + seed + ", " + i);
      assertEquals(serve.requests().get(i).arrivalSeconds(), run.requests().get(i).arrivalSeconds());
      assertEquals(9, run.requests().get(i).outputTokens());
    }
    // Another rate changes arrivals only.
    BenchWorkload faster = Workloads.standard("online", "online-r7", 20, new LengthSpec(5, 40), LengthSpec.fixed(9),
        null, 12, 7, seed, 777);
    for (int i = 0; i < 20; ++i) {
      assertArrayEquals(run.requests().get(i).prompt(), faster.requests().get(i).prompt());
      assertEquals(run.requests().get(i).arrivalSeconds() / 2, faster.requests().get(i).arrivalSeconds(), 1e-9);
    }
  }

  @Test
  void lengthsComeFromAFileRowByRow() throws Exception {
    Path csv = tmp.resolve("lengths.csv");
    Files.writeString(csv, "# lengths\nprompt,output\n12,3\n30, 1\n7,20\n");
    Path jsonl = tmp.resolve("lengths.jsonl");
    Files.writeString(jsonl, "{\"prompt_tokens\": 12, \"output_tokens\": 3}\n\n{\"prompt_tokens\": 30, \"output_tokens\": 1}\n"
        + "{\"prompt_tokens\": 7, \"output_tokens\": 20}\n");
    for (Path p : List.of(csv, jsonl)) {
      LengthsFile f = LengthsFile.read(p);
      assertEquals(3, f.size());
      BenchWorkload w = Workloads.standard("offline", "offline", 7, LengthSpec.fixed(1), LengthSpec.fixed(1), f, 0, INF,
          3, 500);
      int[][] want = {{12, 3}, {30, 1}, {7, 20}};
      for (int i = 0; i < 7; ++i) {
        assertEquals(want[i % 3][0], w.requests().get(i).promptTokens(), p + " request " + i);
        assertEquals(want[i % 3][1], w.requests().get(i).outputTokens(), p + " request " + i);
      }
      assertEquals("file", w.lengths());
    }
    Path bad = tmp.resolve("bad.csv");
    Files.writeString(bad, "12,3\n4;5\n");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LengthsFile.read(bad));
    assertTrue(e.getMessage().contains("bad.csv:2"), e.getMessage());
    Path zero = tmp.resolve("zero.jsonl");
    Files.writeString(zero, "{\"prompt_tokens\": 0, \"output_tokens\": 3}\n");
    assertThrows(IllegalArgumentException.class, () -> LengthsFile.read(zero));
  }

  @Test
  void lengthSpecsParse() {
    assertEquals(new LengthSpec(1024, 1024), LengthSpec.parse("1024"));
    assertEquals(new LengthSpec(1024, 8192), LengthSpec.parse(" 1024:8192 "));
    for (String bad : new String[] {"0", "9:3", "a:b", "", "4:", "-2"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LengthSpec.parse(bad), bad);
      assertTrue(e.getMessage().contains("length"), e.getMessage());
    }
  }

  @Test
  void poissonGapsHaveTheMeanOfTheRate() {
    // Exponential gaps of mean 1/r have standard deviation 1/r: the sample mean of n gaps lies
    // within 4 standard errors (1/r/sqrt(n)) of 1/r except with probability ~6e-5.
    long seed = new SplittableRandom().nextLong();
    int n = 20001;
    double rate = 2.5;
    BenchWorkload w = Workloads.standard("online", "online-r2.5", n, LengthSpec.fixed(1), LengthSpec.fixed(1), null, 0,
        rate, seed, 10);
    List<Workload.Request> rs = w.requests();
    assertEquals(0, rs.get(0).arrivalSeconds());
    double sum = 0;
    double sumSq = 0;
    for (int i = 1; i < n; ++i) {
      double gap = rs.get(i).arrivalSeconds() - rs.get(i - 1).arrivalSeconds();
      assertTrue(gap >= 0, "arrivals in order");
      sum += gap;
      sumSq += gap * gap;
    }
    int gaps = n - 1;
    double mean = sum / gaps;
    double bound = 4 * (1 / rate) / Math.sqrt(gaps);
    assertEquals(1 / rate, mean, bound, "seed " + seed);
    // An exponential's variance is its mean squared (a constant gap would pass the mean check).
    double var = sumSq / gaps - mean * mean;
    assertEquals(1 / (rate * rate), var, 0.1 / (rate * rate), "seed " + seed);
    assertEquals("online-r2.5", Workloads.onlineLabel(2.5));
    assertEquals("online-r2", Workloads.onlineLabel(2.0));
    assertEquals("online-r0.125", Workloads.onlineLabel(0.125));
  }

  @Test
  void ragPromptsReuseDocumentsOfThePoolInDifferentOrders() {
    long seed = new SplittableRandom().nextLong();
    BenchWorkload.Rag rag = new BenchWorkload.Rag(4, 16, 10, 5);
    BenchWorkload w = Workloads.rag(30, rag, LengthSpec.fixed(8), seed, 5000);
    Map<String, Integer> docIds = new HashMap<>();
    Map<Integer, Set<Integer>> positions = new HashMap<>();
    List<int[]> questions = new ArrayList<>();
    for (Workload.Request r : w.requests()) {
      int[] p = r.prompt();
      assertEquals(4 * 16 + 5, p.length);
      assertEquals(8, r.outputTokens());
      Set<Integer> inThis = new HashSet<>();
      for (int d = 0; d < 4; ++d) {
        String key = Arrays.toString(Arrays.copyOfRange(p, d * 16, (d + 1) * 16));
        int id = docIds.computeIfAbsent(key, k -> docIds.size());
        assertTrue(inThis.add(id), "seed " + seed + ": a document twice in one prompt");
        positions.computeIfAbsent(id, k -> new HashSet<>()).add(d);
      }
      questions.add(Arrays.copyOfRange(p, 64, 69));
    }
    // 120 document slots drawn from a pool of 10: at most 10 distinct documents, each used about
    // 12 times, at several positions.
    assertTrue(docIds.size() <= 10, "seed " + seed + ": " + docIds.size() + " distinct documents");
    assertTrue(docIds.size() >= 8, "seed " + seed + ": " + docIds.size() + " distinct documents");
    int movable = 0;
    for (Set<Integer> at : positions.values()) {
      if (at.size() >= 2) {
        ++movable;
      }
    }
    assertTrue(movable >= docIds.size() / 2, "seed " + seed + ": documents seen at one position only: " + positions);
    assertNotEquals(Arrays.toString(questions.get(0)), Arrays.toString(questions.get(1)), "questions differ");
    // The same seed gives the same prompts; the RAG streams are not serve's.
    BenchWorkload again = Workloads.rag(30, rag, LengthSpec.fixed(8), seed, 5000);
    assertArrayEquals(w.requests().get(7).prompt(), again.requests().get(7).prompt());
    assertThrows(IllegalArgumentException.class, () -> new BenchWorkload.Rag(11, 16, 10, 5));
  }

  @Test
  void ppTgPromptsHaveTheirLengthsAndDiffer() {
    Workloads.PpTgPrompts p = Workloads.ppTg(new int[] {5, 9}, new int[] {4, 6}, new int[] {1, 3}, 11, 300);
    assertEquals(2, p.pp().size());
    assertEquals(9, p.pp().get(1).length);
    assertEquals(4, p.tg().size());
    assertEquals(3, p.tg().get(3).size());
    assertEquals(6, p.tg().get(3).get(2).length);
    assertNotEquals(Arrays.toString(p.tg().get(3).get(0)), Arrays.toString(p.tg().get(3).get(1)));
  }
}
