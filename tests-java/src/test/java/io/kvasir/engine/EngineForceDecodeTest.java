package io.kvasir.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Teacher forcing through the generation path ({@link Engine#forceDecode}): under {@code full}
 * (paged, decode steps) and on the slot caches it gives the logits {@link Engine#scoreTokens}
 * gives for the same sequence, and the greedy continuation's own logits pick it back.
 */
class EngineForceDecodeTest {
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

  private static Engine engine(String policy) {
    Engine.Builder b = Engine.builder().setModel("tiny:llama").optDevice(Backend.CPU, 0).optDtype(DType.BF16)
        .optMaxContext(160).optMaxBatch(3).optMaxStepTokens(64).optPageTokens(8);
    if (policy != null) {
      b.optPolicy(policy);
    }
    return b.build();
  }

  private static int argmax(float[] x) {
    int best = 0;
    for (int i = 1; i < x.length; ++i) {
      if (x[i] > x[best]) {
        best = i;
      }
    }
    return best;
  }

  private static double logSoftmaxAt(float[] logits, int token) {
    return TokenScorer.logSoftmaxAt(logits, token);
  }

  @Test
  void forcedDecodeUnderFullIsTheSlotEnginesAndScoreTokensLogits() {
    List<int[]> prompts = new ArrayList<>();
    List<int[]> forced = new ArrayList<>();
    List<float[][]> slot;
    List<float[]> scored = new ArrayList<>();
    try (Engine slots = engine(null)) {
      prompts.add(slots.encode("A prompt long enough to fill a few pages of eight tokens, then some more words."));
      prompts.add(slots.encode("A second, shorter prompt."));
      prompts.add(slots.encode("x".repeat(70)));
      prompts.add(slots.encode("Four prompts on three slots: the last runs in a second group."));
      for (int i = 0; i < prompts.size(); ++i) {
        int[] f = new int[12 + 5 * i];
        for (int j = 0; j < f.length; ++j) f[j] = (37 * j + 11 * i + 5) % 200 + 10;  // not what greedy would pick
        forced.add(f);
      }
      slot = slots.forceDecode(prompts, forced);
      List<int[]> sequences = new ArrayList<>();
      for (int i = 0; i < prompts.size(); ++i) {
        int[] s = new int[prompts.get(i).length + forced.get(i).length];
        System.arraycopy(prompts.get(i), 0, s, 0, prompts.get(i).length);
        System.arraycopy(forced.get(i), 0, s, prompts.get(i).length, forced.get(i).length);
        sequences.add(s);
      }
      scored = slots.scoreTokens(sequences);
    }
    List<float[][]> paged;
    try (Engine full = engine("full")) {
      paged = full.forceDecode(prompts, forced);
    }
    for (int i = 0; i < prompts.size(); ++i) {
      assertEquals(forced.get(i).length, slot.get(i).length);
      assertEquals(forced.get(i).length, paged.get(i).length);
      for (int j = 0; j < forced.get(i).length; ++j) {
        // The CPU step is exact under paging and batching: bit for bit.
        assertArrayEquals(slot.get(i)[j], paged.get(i)[j], "prompt " + i + " step " + j);
        // scoreTokens feeds the prompt one token per step, forceDecode prefills it: the same fp32
        // operations per row on the CPU, and at most a rounding apart in any case.
        double want = scored.get(i)[prompts.get(i).length - 1 + j];
        double got = logSoftmaxAt(paged.get(i)[j], forced.get(i)[j]);
        assertEquals(want, got, 1e-5 * Math.max(1, Math.abs(want)), "prompt " + i + " step " + j);
      }
    }
  }

  @Test
  void theGreedyContinuationIsTheArgmaxOfItsForcedLogits() {
    for (String policy : new String[] {null, "full", "quest:k=2"}) {
      try (Engine e = engine(policy)) {
        int[] prompt = e.encode("y".repeat(90));
        GenerationResult g = e.generate(GenerationRequest.of(prompt, 20, SamplingParams.greedy()).withIgnoreEos(true));
        float[][] logits = e.forceDecode(prompt, g.tokens());
        assertEquals(20, logits.length);
        for (int j = 0; j < 20; ++j) {
          assertEquals(g.tokens()[j], argmax(logits[j]), policy + " step " + j);
        }
      }
    }
  }

  @Test
  void badArgumentsAreRefused() {
    try (Engine e = engine("full")) {
      IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
          () -> e.forceDecode(new int[] {1, 2}, new int[0]));
      assertTrue(empty.getMessage().contains("no forced tokens"), empty.getMessage());
      IllegalArgumentException longer = assertThrows(IllegalArgumentException.class,
          () -> e.forceDecode(new int[150], new int[20]));
      assertTrue(longer.getMessage().contains("exceed the context"), longer.getMessage());
      assertThrows(IllegalArgumentException.class, () -> e.forceDecode(List.of(new int[] {1}), List.of()));
    }
  }
}
