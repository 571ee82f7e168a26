package io.kvasir.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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

/** The engine's API on the tiny demo model: streaming, stops, sampling controls and limits. */
class EngineApiTest {
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

  private static Engine tiny(String arch, int context) {
    return Engine.builder().setModel("tiny:" + arch).optDevice(Backend.CPU, 0).optDtype(DType.F32)
        .optMaxContext(context).optMaxBatch(4).build();
  }

  @Test
  void streamedTokensAndTextAddUpToTheResult() {
    try (Engine e = tiny("llama", 128)) {
      List<Integer> tokens = new ArrayList<>();
      StringBuilder text = new StringBuilder();
      GenerationResult r = e.generate(GenerationRequest.of(e.encode("streaming"), 20, SamplingParams.sample(1f, 3))
          .withIgnoreEos(true), (t, delta) -> {
            tokens.add(t);
            text.append(delta);
          });
      assertArrayEquals(r.tokens(), tokens.stream().mapToInt(Integer::intValue).toArray());
      // The streamed pieces hold back incomplete characters; the result flushes them at the end.
      assertTrue(r.text().startsWith(text.toString()), r.text() + " vs streamed " + text);
      assertEquals(e.tokenizer().decode(r.tokens()), r.text());
      assertEquals(FinishReason.LENGTH, r.finishReason());
    }
  }

  @Test
  void modelOptionsAreCheckedByNameAndTheProfileReadsBack() {
    try (Engine e = tiny("llama", 64)) {
      io.kvasir.nativeapi.KvasirException bad = org.junit.jupiter.api.Assertions.assertThrows(
          io.kvasir.nativeapi.KvasirException.class, () -> e.setModelOption("gemv_max_rows", 99));
      assertTrue(bad.getMessage().contains("gemv_max_rows=99 must be in [0, 16]"), bad.getMessage());
      e.setModelOption("profile", 1);
      e.generate(GenerationRequest.of(new int[] {1, 2, 3}, 4, SamplingParams.greedy()).withIgnoreEos(true));
      // The CPU keeps no stage times: the table is its header.
      assertEquals("kind stage calls total_ms launch_ms\n", e.profile());
    }
  }

  @Test
  void aStopStringEndsTheTextBeforeIt() {
    try (Engine e = tiny("qwen2", 256)) {
      GenerationResult free = e.generate(GenerationRequest.of(e.encode("abc"), 40, SamplingParams.greedy())
          .withIgnoreEos(true));
      String text = free.text();
      // Stop at a piece of text the model really produces: the 3 characters after the 5th.
      String stop = text.substring(5, 8);
      GenerationResult stopped = e.generate(GenerationRequest.of(e.encode("abc"), 40, SamplingParams.greedy())
          .withIgnoreEos(true).withStopStrings(List.of(stop)));
      assertEquals(FinishReason.STOP, stopped.finishReason());
      assertEquals(text.substring(0, text.indexOf(stop)), stopped.text());
    }
  }

  @Test
  void aStopTokenEndsTheSequenceUnseen() {
    try (Engine e = tiny("mistral", 128)) {
      int[] prompt = {256, 72, 105};
      int[] free = e.generate(GenerationRequest.of(prompt, 8, SamplingParams.greedy()).withIgnoreEos(true)).tokens();
      GenerationResult r = e.generate(GenerationRequest.of(prompt, 8, SamplingParams.greedy()).withIgnoreEos(true)
          .withStopTokenIds(List.of(free[3])));
      assertEquals(FinishReason.STOP, r.finishReason());
      int first = 0;
      while (free[first] != free[3]) first++;
      assertEquals(first, r.tokens().length, "tokens before the first occurrence of the stop token");
    }
  }

  @Test
  void aSeedReproducesInAFreshEngineAndSeedsOrRequestsChangeTheDraws() {
    // Randomness is keyed by (seed, request id, position); engines number requests from 1.
    int[] first;
    int[] otherSeed;
    List<GenerationResult> sameSeedTwoRequests;
    try (Engine e = tiny("llama", 128)) {
      int[] prompt = e.encode("seeded");
      first = e.generate(GenerationRequest.of(prompt, 24, SamplingParams.sample(1.5f, 11)).withIgnoreEos(true)).tokens();
      otherSeed = e.generate(GenerationRequest.of(prompt, 24, SamplingParams.sample(1.5f, 12)).withIgnoreEos(true))
          .tokens();
      sameSeedTwoRequests = e.generateAll(List.of(
          GenerationRequest.of(prompt, 24, SamplingParams.sample(1.5f, 11)).withIgnoreEos(true),
          GenerationRequest.of(prompt, 24, SamplingParams.sample(1.5f, 11)).withIgnoreEos(true)), null);
    }
    try (Engine e = tiny("llama", 128)) {
      int[] again = e.generate(GenerationRequest.of(e.encode("seeded"), 24, SamplingParams.sample(1.5f, 11))
          .withIgnoreEos(true)).tokens();
      assertArrayEquals(first, again, "request 1 with seed 11 in a fresh engine");
    }
    assertFalse(java.util.Arrays.equals(first, otherSeed), "another seed draws other tokens");
    assertFalse(java.util.Arrays.equals(sameSeedTwoRequests.get(0).tokens(), sameSeedTwoRequests.get(1).tokens()),
        "two requests with one seed draw independently");
  }

  @Test
  void theContextLimitEndsGenerationWithLength() {
    try (Engine e = tiny("llama", 16)) {
      GenerationResult r = e.generate(GenerationRequest.of(new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 100,
          SamplingParams.greedy()).withIgnoreEos(true));
      assertEquals(FinishReason.LENGTH, r.finishReason());
      assertEquals(7, r.tokens().length, "10 prompt tokens + 7 generated, the last never fed: 16 positions");
      assertThrows(IllegalArgumentException.class,
          () -> e.generate(GenerationRequest.of(new int[16], 4, SamplingParams.greedy())));
    }
  }

  @Test
  void badRequestsAreRefusedByName() {
    IllegalArgumentException e1 = assertThrows(IllegalArgumentException.class,
        () -> new SamplingParams(1f, 0, 0f, 0f, 1f, 0));
    assertTrue(e1.getMessage().contains("top_p=0.0"), e1.getMessage());
    IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class,
        () -> GenerationRequest.of(new int[0], 4, SamplingParams.greedy()));
    assertTrue(e2.getMessage().contains("prompt is empty"), e2.getMessage());
    IllegalArgumentException e3 = assertThrows(IllegalArgumentException.class,
        () -> GenerationRequest.of(new int[] {1}, 0, SamplingParams.greedy()));
    assertTrue(e3.getMessage().contains("max_tokens=0"), e3.getMessage());
  }
}
