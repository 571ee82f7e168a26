package io.kvasir.bench.fidelity;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.engine.Engine;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.policy.Policy;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fidelity measures: KL on hand-computed and identical distributions, the summary's
 * aggregation, and policies against full KV on the tiny CPU model (Quest covering every page is
 * full attention; a small K is not).
 */
class FidelityTest {
  @TempDir
  Path tmp;

  @BeforeEach
  void isolateTheModelCache() {
    System.setProperty("kvasir.cache", tmp.toString());
  }

  @AfterEach
  void restore() {
    System.clearProperty("kvasir.cache");
  }

  private static float[] randomLogits(SplittableRandom rng, int n, double scale) {
    float[] z = new float[n];
    for (int i = 0; i < n; ++i) z[i] = (float) (rng.nextGaussian() * scale);
    return z;
  }

  @Test
  void klOfIdenticalDistributionsIsExactlyZero() {
    SplittableRandom rng = new SplittableRandom(1);
    for (int trial = 0; trial < 20; ++trial) {
      float[] z = randomLogits(rng, 1 + rng.nextInt(5000), 1 + 20 * rng.nextDouble());
      assertEquals(0.0, Divergence.kl(z, z.clone()), "trial " + trial);
    }
    assertEquals(0.0, Divergence.kl(new float[] {5}, new float[] {-3}), "one token: both distributions are {1}");
  }

  @Test
  void klMatchesHandComputedValues() {
    // p = softmax(0, 1) = (1, e) / (1 + e), q = softmax(0, 0) = (1/2, 1/2):
    // KL = sum p_i ln(2 p_i) = 0.110944071671727 nats.
    assertEquals(0.11094407167172735, Divergence.kl(new float[] {0, 1}, new float[] {0, 0}), 1e-15);
    // Invariant to a shift of either side's logits, and stable far from zero.
    assertEquals(0.11094407167172735, Divergence.kl(new float[] {1000, 1001}, new float[] {-7, -7}), 1e-15);
    // p = (1/2, 1/2), q = (1/4, 3/4) from logits (0, ln 3): KL = ln 2 + (ln(1/4) + ln(3/4)) / -2 ... written out:
    // 0.5 ln(0.5 / 0.25) + 0.5 ln(0.5 / 0.75) = 0.5 ln 2 + 0.5 ln(2/3) = 0.5 ln(4/3).
    float ln3 = (float) Math.log(3);
    double q1 = 1 / (1 + Math.exp(ln3));  // the fp32 ln 3 as the code sees it
    double want = 0.5 * Math.log(0.5 / q1) + 0.5 * Math.log(0.5 / (1 - q1));
    assertEquals(want, Divergence.kl(new float[] {0, 0}, new float[] {0, ln3}), 1e-15);
    assertEquals(0.5 * Math.log(4.0 / 3.0), want, 1e-7);
    // KL is not symmetric.
    assertTrue(Math.abs(Divergence.kl(new float[] {0, 1}, new float[] {0, 0})
        - Divergence.kl(new float[] {0, 0}, new float[] {0, 1})) > 1e-3);
  }

  @Test
  void klStaysUnderHoeffdingsBoundOfTheLogitPerturbation() {
    SplittableRandom rng = new SplittableRandom(2);
    for (int trial = 0; trial < 50; ++trial) {
      float[] p = randomLogits(rng, 300, 5);
      float[] q = p.clone();
      double eps = Math.pow(10, -1 - 5 * rng.nextDouble());
      for (int i = 0; i < q.length; ++i) q[i] += (float) ((2 * rng.nextDouble() - 1) * eps);
      double kl = Divergence.kl(p, q);
      assertTrue(kl >= -1e-15 && kl <= Divergence.klBound(p, q) + 1e-15, "trial " + trial + ": " + kl + " > bound "
          + Divergence.klBound(p, q));
    }
    assertEquals(1, Divergence.argmax(new float[] {0, 3, 3, 1}), "the lowest id on ties");
  }

  @Test
  void comparisonAndSummaryCountAsDocumented() {
    float[][] base = {{0, 1, 0}, {2, 0, 0}, {0, 0, 1}, {1, 0, 0}};
    float[][] same = {{0, 1, 0}, {2, 0, 0}, {0, 0, 1}, {1, 0, 0}};
    float[][] moved = {{0, 1, 0}, {0, 2, 0}, {0, 0, 1}, {1, 0, 0}};
    int[] forced = {1, 0, 2, 0};
    PromptComparison a = PromptComparison.of("a", "g", 10, base, same, forced, new int[] {1, 0, 2, 0});
    assertEquals(4, a.top1Agreements());
    assertEquals(4, a.tokenAgreements());
    assertEquals(4, a.firstDivergence(), "never diverged: the number of tokens");
    assertEquals(0.0, a.meanKl());
    PromptComparison b = PromptComparison.of("b", "g", 12, base, moved, forced, new int[] {1, 0, 1, 0});
    assertEquals(3, b.top1Agreements());
    assertEquals(3, b.tokenAgreements(), "position-wise agreement, even after a divergence");
    assertEquals(2, b.firstDivergence());
    assertEquals(0.0, b.kl()[0]);
    assertTrue(b.kl()[1] > 0);
    FidelitySummary s = FidelitySummary.of("quest:k=1", "g", List.of(a, b));
    assertEquals(2, s.prompts());
    assertEquals(8, s.steps());
    assertEquals(7 / 8.0, s.top1Agreement(), 1e-12);
    assertEquals(7 / 8.0, s.tokenAgreement(), 1e-12);
    assertEquals(3.0, s.firstDivergenceMedian(), 1e-12, "median of 4 and 2");
    assertEquals(2, s.firstDivergenceMin());
    assertEquals(1, s.divergedPrompts());
    assertEquals(b.kl()[1] / 8, s.klMean(), 1e-15);
    assertEquals(b.kl()[1], s.klMax());
    assertEquals(1, s.stepsPerPoint());
    assertArrayEquals(new double[] {0, b.kl()[1] / 2, 0, 0}, s.klCurve(), 1e-15);
    // A long run is averaged into at most 256 points.
    double[] kl = new double[600];
    for (int i = 0; i < kl.length; ++i) kl[i] = i;
    FidelitySummary longRun = FidelitySummary.of("p", "g", List.of(new PromptComparison("c", "g", 1, kl, 600, 600,
        600)));
    assertEquals(3, longRun.stepsPerPoint());
    assertEquals(200, longRun.klCurve().length);
    assertEquals(1.0, longRun.klCurve()[0], 1e-12);
    assertEquals(598.0, longRun.klCurve()[199], 1e-12);
  }

  private static Engine engine(String policy) {
    return Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optDtype(DType.BF16).optMaxContext(160)
        .optMaxBatch(2).optMaxStepTokens(64).optPageTokens(8).optPolicy(Policy.parse(policy).withoutPrefixCache())
        .build();
  }

  @Test
  void questCoveringEveryPageIsFullAttentionAndASmallKIsNot() {
    List<FidelityRunner.Prompt> prompts = new ArrayList<>();
    try (Engine e = engine("full")) {
      prompts.add(new FidelityRunner.Prompt("a", "g", e.encode("Quest picks pages; full KV attends all of them. "
          .repeat(2))));
      prompts.add(new FidelityRunner.Prompt("b", "g", e.encode("z".repeat(110))));
      prompts.add(new FidelityRunner.Prompt("c", "h", e.encode("Another prompt of a few pages, eight tokens each.")));
    }
    int tokens = 24;
    FidelityRunner runner = new FidelityRunner(FidelityTest::engine, tokens, 2);
    // At most 110 + 24 tokens: 17 pages of 8, so k=20 selects every page.
    Map<String, List<PromptComparison>> rows = runner.run("full", List.of("quest:k=20", "quest:k=2"), prompts);
    assertEquals(1.0, runner.baselineSelfAgreement(), "on the CPU the forced logits pick the generated tokens");
    for (PromptComparison c : rows.get("quest:k=20")) {
      // Every page selected, in position order (the selection is sorted): the same rows in the
      // same order as full attention, hence the same fp32 operations and the same logits
      // (delta = 0). Through Hoeffding's lemma KL <= (max delta - min delta)^2 / 8, which here
      // leaves only the double rounding of the KL sum itself (exactly 0 for equal logits).
      for (int i = 0; i < c.steps(); ++i) {
        assertEquals(0.0, c.kl()[i], c.id() + " step " + i);
      }
      assertEquals(tokens, c.top1Agreements());
      assertEquals(tokens, c.tokenAgreements());
      assertEquals(tokens, c.firstDivergence());
    }
    double maxSmall = 0;
    for (PromptComparison c : rows.get("quest:k=2")) {
      assertEquals(0.0, c.kl()[0], c.id() + ": the first token comes from prefill, which attends every page");
      for (double v : c.kl()) {
        assertTrue(v >= -1e-12, c.id() + ": KL " + v);
        maxSmall = Math.max(maxSmall, v);
      }
    }
    assertTrue(maxSmall > 1e-6, "two pages of up to seventeen change some distribution: max KL " + maxSmall);
    FidelitySummary exact = FidelitySummary.of("quest:k=20", "all", rows.get("quest:k=20"));
    assertEquals(0.0, exact.klMax());
    assertEquals(1.0, exact.top1Agreement());
    assertEquals(1.0, exact.tokenAgreement());
  }
}
