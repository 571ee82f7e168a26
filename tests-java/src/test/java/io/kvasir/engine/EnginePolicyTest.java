package io.kvasir.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Devices;
import io.kvasir.policy.PolicySpecException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine under a cache policy (paged cache, continuous batching, prefix caching) against the
 * engine without one (slot caches, static batching) on the same model and requests: the CPU step
 * is exact under paging, batching and chunking, so every result must be the same, token for
 * token, whatever the policy's scheduling did. Quest with K covering every page is full attention.
 */
class EnginePolicyTest {
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

  private static Engine engine(String policy, int batch) {
    Engine.Builder b = Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optDtype(DType.BF16)
        .optMaxContext(160).optMaxBatch(batch).optMaxStepTokens(64).optPageTokens(8);
    if (policy != null) {
      b.optPolicy(policy);
    }
    return b.build();
  }

  private static List<GenerationRequest> requests(Engine e, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    int[] shared = e.encode("A shared system prompt that several requests start with, long enough for pages.");
    List<GenerationRequest> out = new ArrayList<>();
    for (int i = 0; i < 12; ++i) {
      int[] own = e.encode(" request " + i + " asks " + rng.nextInt(1000));
      int[] prompt = new int[shared.length + own.length];
      System.arraycopy(shared, 0, prompt, 0, shared.length);
      System.arraycopy(own, 0, prompt, shared.length, own.length);
      SamplingParams sampling = i % 3 == 0 ? SamplingParams.greedy() : SamplingParams.sample(0.8f, seed + i);
      out.add(GenerationRequest.of(i % 4 == 0 ? own : prompt, 5 + rng.nextInt(30), sampling)
          .withIgnoreEos(i % 2 == 0));
    }
    return out;
  }

  private static void assertSameResults(List<GenerationResult> want, List<GenerationResult> got, String what) {
    assertEquals(want.size(), got.size());
    for (int i = 0; i < want.size(); ++i) {
      assertArrayEquals(want.get(i).tokens(), got.get(i).tokens(), what + ": request " + i);
      assertEquals(want.get(i).finishReason(), got.get(i).finishReason(), what + ": request " + i);
      assertEquals(want.get(i).text(), got.get(i).text(), what + ": request " + i);
    }
  }

  @Test
  void policiesGiveTheSlotEnginesResultsWithContinuousBatchingAndPrefixCaching() {
    long seed = 20261129L;
    List<GenerationResult> want;
    List<GenerationResult> wantAgain;  // request ids go on counting, and sampling is keyed by them
    try (Engine slots = engine(null, 4)) {
      want = slots.generateAll(requests(slots, seed), null);
      wantAgain = slots.generateAll(requests(slots, seed), null);
    }
    for (String policy : new String[] {"full", "full+prefix", "quest:k=20"}) {
      // Three sequences' worth of pages for twelve requests: the scheduler queues and preempts.
      try (Engine paged = engine(policy, 3)) {
        List<GenerationResult> first = paged.generateAll(requests(paged, seed), null);
        assertSameResults(want, first, policy);
        // Again on the same engine: the prefix cache now holds the shared prompt.
        assertSameResults(wantAgain, paged.generateAll(requests(paged, seed), null), policy + ", second call");
      }
    }
  }

  @Test
  void aTightBudgetInTokensPreemptsYetGivesTheSameResultsAndTooSmallBudgetsAreRefused() {
    long seed = 7L;
    List<GenerationResult> want;
    try (Engine slots = engine(null, 4)) {
      want = slots.generateAll(requests(slots, seed), null);
    }
    // 200 tokens: one long request and a little more at a time.
    try (Engine tight = Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optDtype(DType.BF16)
        .optMaxContext(160).optMaxBatch(4).optMaxStepTokens(64).optPageTokens(8).optPolicy("full")
        .optKvBudget("200tokens").build()) {
      assertSameResults(want, tight.generateAll(requests(tight, seed), null), "200-token budget");
    }
    IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> Engine.builder()
        .setModel("tiny:llama").optDevice(Backend.CPU, 0).optPolicy("full").optKvBudget("1KiB").build());
    assertTrue(none.getMessage().contains("holds no page"), none.getMessage());
    try (Engine small = Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optMaxContext(160)
        .optPageTokens(8).optPolicy("full").optKvBudget("64tokens").build()) {
      IllegalArgumentException big = assertThrows(IllegalArgumentException.class, () -> small.generate(
          GenerationRequest.of(new int[100], 10, SamplingParams.greedy())));
      assertTrue(big.getMessage().contains("do not fit the KV cache"), big.getMessage());
    }
  }

  @Test
  void samplesOfOnePromptShareItsPagesAndEqualIndependentCopies() {
    GenerationRequest r;
    List<GenerationResult> want;
    try (Engine slots = engine(null, 4)) {
      r = GenerationRequest.of(slots.encode("Samples of one prompt, shared pages, each its own draw."), 24,
          SamplingParams.sample(1.0f, 99)).withIgnoreEos(true);
      want = slots.generateSamples(r, 4);
    }
    try (Engine paged = engine("full", 4)) {
      List<GenerationResult> got = paged.generateSamples(r, 4);
      assertSameResults(want, got, "4 samples");
      assertTrue(java.util.stream.IntStream.range(1, 4)
          .anyMatch(i -> !java.util.Arrays.equals(got.get(0).tokens(), got.get(i).tokens())),
          "samples keyed by their own request ids draw differently");
    }
  }

  @Test
  void aSmallQuestKChangesWhatLongSequencesAttend() {
    try (Engine full = engine("full", 2); Engine quest = engine("quest:k=2", 2)) {
      GenerationRequest r = GenerationRequest.of(full.encode("x".repeat(120)), 30, SamplingParams.greedy())
          .withIgnoreEos(true);
      GenerationResult a = full.generate(r);
      GenerationResult b = quest.generate(r);
      assertEquals(30, b.tokens().length);
      assertTrue(a.stats().promptTokens() > 16, "the prompt spans more than two pages");
      // Quest attends 2 of 16+ pages per decode token: the logits move (tokens may or may not).
      assertEquals(a.tokens()[0], b.tokens()[0], "the first token comes from prefill, which attends every page");
    }
  }

  // OpenAI's seed: with a sampling key, the same seed and prompt give the same tokens in any call
  // (the engine's request ids advance between calls); sample j of n draws from key + j.
  @Test
  void aSamplingKeyMakesSampledOutputRepeatAcrossCalls() {
    try (Engine e = engine("full", 4); Engine slots = engine(null, 4)) {
      int[] prompt = e.encode("Sampling keys make a seed mean the same output every time.");
      GenerationRequest r = GenerationRequest.of(prompt, 24, SamplingParams.sample(1.5f, 77)).withIgnoreEos(true);
      GenerationRequest keyed = r.withSamplingKey(5);
      int[] first = e.generate(keyed).tokens();
      int[] again = e.generate(keyed).tokens();
      assertArrayEquals(first, again, "the same key, seed and prompt in two calls");
      assertArrayEquals(first, slots.generate(keyed).tokens(), "slot caches draw from the same stream");
      int[] unkeyedA = e.generate(r).tokens();
      int[] unkeyedB = e.generate(r).tokens();
      assertTrue(!java.util.Arrays.equals(unkeyedA, unkeyedB) || !java.util.Arrays.equals(unkeyedA, first),
          "without a key each call draws anew (24 tokens at temperature 1.5 would not all repeat)");
      List<GenerationResult> samples = e.generateSamples(keyed, 2);
      assertArrayEquals(first, samples.get(0).tokens(), "sample 0 draws from the key itself");
      assertArrayEquals(e.generate(r.withSamplingKey(6)).tokens(), samples.get(1).tokens(), "sample 1 from key + 1");
    }
  }

  @Test
  void badPoliciesAreRefusedByName() {
    PolicySpecException e = assertThrows(PolicySpecException.class, () -> engine("quest:k=0", 2));
    assertTrue(e.getMessage().contains("quest"), e.getMessage());
    if (Devices.count(Backend.CUDA).count() == 0) {  // a policy does not hide the missing device
      IllegalArgumentException cuda = assertThrows(IllegalArgumentException.class, () -> Engine.builder()
          .setModel("tiny:llama").optDevice(Backend.CUDA, 0).optPolicy("full").build());
      assertTrue(cuda.getMessage().contains("no CUDA device"), cuda.getMessage());
    }
  }
}
