package io.kvasir.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.kvasir.model.Architecture;
import io.kvasir.model.TensorDType;
import io.kvasir.model.TinyCheckpoints;
import io.kvasir.model.TinyModelSpec;
import io.kvasir.model.reference.ReferenceModel;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Memory;
import io.kvasir.nativeapi.MemoryTier;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The engine on the CPU against the plain double-precision reference forward
 * (io.kvasir.model.reference, which shares no code with the engine), on tiny checkpoints of all
 * four architectures written by the test: logits, greedy continuations, and batched = solo.
 */
class EngineReferenceTest {
  private static final Logger LOG = LogManager.getLogger(EngineReferenceTest.class);
  private static final double U32 = Math.ulp(1.0f) / 2;  // fp32 unit roundoff, 2^-24

  @TempDir
  Path tmp;

  private static long seed(String name) {
    long s = Long.getLong("kvasir.test.seed", System.nanoTime()) ^ name.hashCode();
    LOG.info("{}: seed {} (replay with -Dkvasir.test.seed)", name, s);
    return s;
  }

  private static Engine engine(Path dir, DType dtype, int batch) {
    return Engine.builder().setModel(dir.toString()).optDevice(Backend.CPU, 0).optDtype(dtype).optMaxContext(256)
        .optMaxBatch(batch).optMaxStepTokens(13).build();
  }

  private static int[] randomPrompt(SplittableRandom rng, int length, int vocab) {
    return rng.ints(length, 3, vocab).toArray();  // ids 0..2 are bos/eos
  }

  /**
   * fp32 logits within a bound derived from the arithmetic: every output of a matrix product of
   * inner size K is off by at most gamma_K = K u of the sum of |terms|, the per-layer chain
   * (norm, projections, attention, MLP, two residual sums) applies about eight such steps, and
   * the relative error of each layer's output carries into the next. With K the widest inner
   * dimension and L layers the logits are off by at most 8 (L + 1) K u relative to their scale.
   */
  private static double fp32Bound(TinyModelSpec spec, double scale) {
    int k = Math.max(spec.hiddenSize(), Math.max(spec.intermediateSize(), spec.numHeads() * spec.headDim()));
    return 8.0 * (spec.numLayers() + 1) * k * U32 * scale;
  }

  private static double maxAbs(double[] v) {
    return Arrays.stream(v).map(Math::abs).max().orElse(0);
  }

  private static double std(double[] v) {
    double mean = Arrays.stream(v).average().orElse(0);
    return Math.sqrt(Arrays.stream(v).map(x -> (x - mean) * (x - mean)).average().orElse(0));
  }

  static java.util.stream.Stream<Arguments> architecturesAndHeadDims() {
    return java.util.Arrays.stream(Architecture.values())
        .flatMap(a -> java.util.stream.Stream.of(Arguments.of(a, 64), Arguments.of(a, 128)));
  }

  @ParameterizedTest
  @MethodSource("architecturesAndHeadDims")
  void fp32LogitsMatchTheReferenceWithinTheFp32Bound(Architecture arch, int headDim) throws Exception {
    // head_dim 128 with hidden 192 and 12 heads: q_proj is 1536 x 192, head_dim independent of hidden.
    TinyModelSpec spec = TinyModelSpec.builder(arch).optDtype(TensorDType.F32).optHeadDim(headDim)
        .optSeed(seed("logits-" + arch + "-" + headDim)).build();
    Path dir = TinyCheckpoints.write(spec, tmp.resolve(arch.modelType() + "-" + headDim));
    ReferenceModel ref = ReferenceModel.load(dir);
    int[] prompt = randomPrompt(new SplittableRandom(spec.seed()), 37, spec.vocabSize());
    double[] expected = ref.logits(prompt)[prompt.length - 1];
    try (Engine e = engine(dir, DType.F32, 1)) {
      GenerationResult r = e.generate(GenerationRequest.of(prompt, 1, SamplingParams.greedy()).withPromptLogits(true));
      float[] got = r.promptLogits();
      double bound = fp32Bound(spec, Math.max(1, maxAbs(expected)));
      double worst = 0;
      for (int i = 0; i < expected.length; i++) {
        double err = Math.abs(got[i] - expected[i]);
        worst = Math.max(worst, err);
        if (!(err <= bound)) {
          fail(arch + ": logit " + i + " = " + got[i] + ", reference " + expected[i] + ", |error| " + err + " > bound "
              + bound);
        }
      }
      LOG.info("{}: max |logit error| {} (bound {}, std {})", arch, worst, bound, std(expected));
    }
  }

  @ParameterizedTest
  @EnumSource(Architecture.class)
  void greedyContinuationsEqualTheReference(Architecture arch) throws Exception {
    TinyModelSpec spec = TinyModelSpec.builder(arch).optDtype(TensorDType.F32).optSeed(seed("greedy-" + arch)).build();
    Path dir = TinyCheckpoints.write(spec, tmp.resolve(arch.modelType()));
    ReferenceModel ref = ReferenceModel.load(dir);
    int[] prompt = randomPrompt(new SplittableRandom(spec.seed() + 1), 9, spec.vocabSize());
    int n = 12;
    ReferenceModel.Continuation expected = ref.greedy(prompt, n);
    try (Engine e = engine(dir, DType.F32, 1)) {
      int[] got = e.generate(GenerationRequest.of(prompt, n, SamplingParams.greedy()).withIgnoreEos(true)).tokens();
      // Equal up to the first step whose top-2 margin is within rounding (a tie the arithmetic may break either way).
      double bound = fp32Bound(spec, 10);
      for (int i = 0; i < n; i++) {
        if (expected.top2Margins()[i] < 2 * bound) {
          LOG.info("{}: stopping the comparison at step {} (top-2 margin {})", arch, i, expected.top2Margins()[i]);
          break;
        }
        assertEquals(expected.tokens()[i], got[i], arch + ": greedy token " + i + " of " + Arrays.toString(got)
            + " vs reference " + Arrays.toString(expected.tokens()));
      }
    }
  }

  @ParameterizedTest
  @EnumSource(Architecture.class)
  void bf16EngineStaysCloseToTheReference(Architecture arch) throws Exception {
    // A bf16 checkpoint holds the reference's exact weights; the engine keeps K and V in bf16, so
    // the logits move by bf16 rounding (2^-8) of the attention inputs: the 3e-2 of the std.
    TinyModelSpec spec = TinyModelSpec.builder(arch).optDtype(TensorDType.BF16).optSeed(seed("bf16-" + arch)).build();
    Path dir = TinyCheckpoints.write(spec, tmp.resolve(arch.modelType()));
    ReferenceModel ref = ReferenceModel.load(dir);
    int[] prompt = randomPrompt(new SplittableRandom(spec.seed()), 21, spec.vocabSize());
    double[] expected = ref.logits(prompt)[prompt.length - 1];
    try (Engine e = engine(dir, DType.BF16, 1)) {
      float[] got = e.generate(GenerationRequest.of(prompt, 1, SamplingParams.greedy()).withPromptLogits(true))
          .promptLogits();
      double worst = 0;
      for (int i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
      double relative = worst / std(expected);
      LOG.info("{}: bf16 max |diff| / std(logits) = {}", arch, relative);
      assertTrue(relative < 3e-2, arch + ": bf16 max |diff| / std = " + relative);
    }
  }

  @Test
  void batchedRunsEqualSoloRunsBitForBit() throws Exception {
    TinyModelSpec spec = TinyModelSpec.builder(Architecture.QWEN2).optDtype(TensorDType.BF16)
        .optSeed(seed("batched")).build();
    Path dir = TinyCheckpoints.write(spec, tmp.resolve("qwen2"));
    SplittableRandom rng = new SplittableRandom(spec.seed());
    List<GenerationRequest> requests = new ArrayList<>();
    int[] lengths = {3, 30, 17};
    for (int i = 0; i < lengths.length; i++) {
      SamplingParams sampling = i == 1 ? SamplingParams.sample(0.9f, 7).withTopP(0.9f) : SamplingParams.greedy();
      requests.add(new GenerationRequest(randomPrompt(rng, lengths[i], spec.vocabSize()), 10, sampling, List.of(),
          List.of(), true, true));
    }
    List<GenerationResult> batched;
    try (Engine e = engine(dir, DType.BF16, 3)) {
      batched = e.generateAll(requests, null);
    }
    for (int i = 0; i < requests.size(); i++) {
      try (Engine e = engine(dir, DType.BF16, 1)) {
        // A fresh engine numbers requests from 1: give the solo run the batched request id.
        for (int skip = 0; skip < i; skip++) {
          e.generate(GenerationRequest.of(new int[] {3}, 1, SamplingParams.greedy()));
        }
        GenerationResult solo = e.generate(requests.get(i));
        assertArrayEquals(batched.get(i).promptLogits(), solo.promptLogits(), "prompt logits of request " + i);
        assertArrayEquals(batched.get(i).tokens(), solo.tokens(), "tokens of request " + i);
      }
    }
  }

  @Test
  void closingTheEngineReturnsAllNativeMemory() throws Exception {
    Path dir = TinyCheckpoints.write(TinyModelSpec.defaults(Architecture.LLAMA), tmp.resolve("llama"));
    long before = Memory.live(MemoryTier.DEVICE).count();
    try (Engine e = engine(dir, DType.BF16, 2)) {
      assertTrue(Memory.live(MemoryTier.DEVICE).count() > before);
      e.generate(GenerationRequest.of(new int[] {5, 6, 7}, 4, SamplingParams.greedy()));
    }
    assertEquals(before, Memory.live(MemoryTier.DEVICE).count());
  }
}
