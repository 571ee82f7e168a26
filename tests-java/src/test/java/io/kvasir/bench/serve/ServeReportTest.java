package io.kvasir.bench.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.engine.FinishReason;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.GenerationStats;
import io.kvasir.engine.ServeResult;
import io.kvasir.engine.StepTrace;
import io.kvasir.engine.SyntheticModels;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.ModelShape;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.perf.StepCost;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The serving summary on hand-made results: which samples go into which figure, and the roofline sums. */
class ServeReportTest {
  private static GenerationResult result(int prompt, double arrival, double ttft, double... gaps) {
    double decode = 0;
    for (double g : gaps) {
      decode += g;
    }
    GenerationStats s = new GenerationStats(prompt, gaps.length + 1, ttft, decode, 0, arrival, gaps);
    return new GenerationResult(new int[gaps.length + 1], null, FinishReason.LENGTH, s, null);
  }

  @Test
  void figuresFollowTheServingBenchmarkDefinitions() {
    List<GenerationResult> rs = List.of(
        result(100, 0, 50, 10, 20, 30),  // TPOT 20
        result(200, 100, 80),            // one token: no TPOT, no ITL
        result(300, 200, 20, 5, 5));     // TPOT 5
    List<StepTrace> steps = List.of(new StepTrace(1, 1000, 1, 1000, 500500, 2_000_000),
        new StepTrace(2, 2, 2, 203, 203, 1_000_000));
    ServeResult run = new ServeResult(rs, 2000, 1, 64, 32, steps);
    ModelShape shape = SyntheticModels.shape("synthetic:llama3-1b");
    long weights = 2_400_000_000L;
    StepCost cost = new StepCost(shape, weights);
    Roofline ceiling = new Roofline(Backend.CUDA, 0, 4e12, 3e12, 0, 0, 5e14, 0, 0);
    ServeReport r = ServeReport.of(run, cost, ceiling);
    assertEquals(3, r.completed());
    assertEquals(600, r.promptTokens());
    assertEquals(8, r.outputTokens());
    assertEquals(2.0, r.wallSeconds());
    assertEquals(0.003, r.busySeconds(), 1e-12);
    assertEquals(1.5, r.requestsPerSecond(), 1e-12);
    assertEquals(4, r.outputTokensPerSecond(), 1e-12);
    assertEquals(304, r.totalTokensPerSecond(), 1e-12);
    assertEquals(50, r.ttftMillis().p50(), 1e-12);
    assertEquals((50 + 80 + 20) / 3.0, r.ttftMillis().mean(), 1e-12);
    assertEquals(2, r.tpotMillis().count());
    assertEquals(12.5, r.tpotMillis().mean(), 1e-12);
    assertEquals(5, r.itlMillis().count());
    assertEquals(14, r.itlMillis().mean(), 1e-12);
    assertEquals(10, r.itlMillis().p50(), 1e-12);
    assertEquals(110, r.latencyMillis().max(), 1e-12);
    assertEquals(0.5, r.prefixHitRate(), 1e-12);
    // llama3-1b ties its embeddings: every step reads all the weights (the table is the LM head).
    double bytes = 2 * weights + (1000 + 203) * shape.kvBytesPerToken();
    assertEquals(bytes, r.roofline().bytes(), 1);
    assertEquals(bytes / 4e12, r.roofline().bandwidthSeconds(), 1e-12);
    double seconds = 0;
    for (StepTrace st : steps) {
      seconds += Math.max(cost.bytes(st) / 4e12, cost.flops(st) / 5e14);
    }
    assertEquals(seconds, r.roofline().seconds(), 1e-12);
    assertTrue(r.roofline().seconds() > r.roofline().bandwidthSeconds(), "the 1000-token step is compute-bound");
    assertEquals(seconds / 0.003, r.fractionOfRoofline(), 1e-9);
    assertNull(ServeReport.of(run, cost, null).roofline());
    assertTrue(r.table("t").contains("TTFT"));
  }

  @Test
  void stepCostCountsTheLlamaShapes() {
    ModelShape s = SyntheticModels.shape("synthetic:llama3-8b");
    StepCost cost = new StepCost(s, 16_060_522_496L);
    // Llama-3-8B: 6.98e9 parameters outside the embedding and the LM head.
    assertEquals(6_979_321_856L, cost.matmulParamsPerToken());
    // Untied: the embedding table (128256 x 4096 bf16) is not read whole by a step.
    assertEquals(16_060_522_496L - 128256L * 4096 * 2, cost.stepWeightBytes());
    StepTrace decode = new StepTrace(1, 1, 1, 1000, 1000, 0);
    double flops = 2.0 * 6_979_321_856L + 2.0 * 128256 * 4096 + 4.0 * 32 * 32 * 128 * 1000;
    assertEquals(flops, cost.flops(decode), 1);
    assertEquals(cost.stepWeightBytes() + 1000.0 * 131072, cost.bytes(decode), 1);
  }
}
