package io.kvasir.ops;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvasir.nativeapi.AttentionShape;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.Buffer;
import io.kvasir.nativeapi.CpuIsa;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.KvasirException;
import io.kvasir.nativeapi.MemoryTier;
import io.kvasir.nativeapi.Ops;
import io.kvasir.nativeapi.Status;
import io.kvasir.nativeapi.Stream;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The CPU kernels at every SIMD level against the double-precision reference, within the bounds
 * of {@link ErrorBounds}, on fresh random inputs (seed logged).
 */
class CpuKernelsTest {
  private static final Logger LOG = LogManager.getLogger(CpuKernelsTest.class);

  private CpuIsa before;
  private Stream stream;
  private long seed;

  @BeforeEach
  void open() {
    before = CpuIsa.active();
    stream = Stream.cpu();
    seed = ThreadLocalRandom.current().nextLong();
  }

  @AfterEach
  void restore() {
    stream.close();
    CpuIsa.setMax(before);
  }

  /** Caps the SIMD level, skipping levels this CPU lacks. */
  private void use(CpuIsa isa) {
    try {
      CpuIsa.setMax(isa);
    } catch (KvasirException e) {
      assumeTrue(e.status() != Status.UNSUPPORTED, "this CPU lacks " + isa);
      throw e;
    }
    LOG.info("{} with seed {}", isa, seed);
  }

  @ParameterizedTest
  @EnumSource(CpuIsa.class)
  void everySelfCheckCaseAgreesWithTheReference(CpuIsa isa) {
    use(isa);
    for (CheckCase c : SelfCheck.cases(seed)) {
      Map<String, double[]> out = c.run(stream);
      for (Map.Entry<String, CheckCase.Expected> e : c.expected().entrySet()) {
        Agreement a = Agreement.of(e.getKey(), e.getValue().rowLength(), e.getValue().values(), out.get(e.getKey()),
            e.getValue().tolerance());
        assertTrue(a.passed(), () -> isa + " " + c.name() + " seed " + c.seed() + ": " + a.detail());
      }
    }
  }

  @ParameterizedTest
  @EnumSource(CpuIsa.class)
  void attentionSplitAndMergedMatchesTheWhole(CpuIsa isa) {
    // Native attention over two halves of the keys, merged by the native merge, must agree with
    // native attention over all keys (each within its bound of the reference, so within the sum).
    use(isa);
    SplittableRandom rng = new SplittableRandom(seed);
    int len = 777;
    int cut = 1 + rng.nextInt(len - 1);
    AttentionShape whole = new AttentionShape(1, 8, 2, 128, len);
    AttentionShape first = new AttentionShape(1, 8, 2, 128, cut);
    AttentionShape rest = new AttentionShape(1, 8, 2, 128, len - cut);
    float scale = whole.defaultScale();
    double[] q = RandomInputs.uniform(rng, 8 * 128, -1.7, 1.7, DType.F32);
    double[] k = RandomInputs.uniform(rng, len * 2 * 128, -1.7, 1.7, DType.F32);
    double[] v = RandomInputs.uniform(rng, len * 2 * 128, -1, 1, DType.F32);
    int rowElements = 2 * 128;
    try (DeviceTensors t = new DeviceTensors(stream)) {
      Buffer qb = t.upload(DType.F32, q);
      Buffer kb = t.upload(DType.F32, k);
      Buffer vb = t.upload(DType.F32, v);
      Buffer o = t.poisoned(DType.F32, 3 * 8 * 128); // [whole, first, rest][8][128]
      Buffer lse = t.poisoned(DType.F32, 3 * 8);
      Ops.attentionDecode(stream, DType.F32, whole, scale, qb, kb, vb, o, lse, null);
      Ops.attentionDecode(stream, DType.F32, first, scale, qb, kb, vb, o.at(1024), lse.at(8), null);
      Ops.attentionDecode(stream, DType.F32, rest, scale, qb, kb.at((long) cut * rowElements),
          vb.at((long) cut * rowElements), o.at(2048), lse.at(16), null);
      Ops.mergeStateInPlace(stream, DType.F32, o.at(1024), lse.at(8), o.at(2048), lse.at(16), 8, 128);
      double[] oAll = t.download(o, DType.F32, 3 * 1024);
      double[] lseAll = t.download(lse, DType.F32, 24);

      ReferenceOps.State ref = ReferenceOps.attentionDecode(whole, scale, q, k, v);
      ErrorBounds.Tolerance tol = ErrorBounds.attentionDecode(whole, scale, q, k, v, ref, DType.F32);
      double[] twice = Arrays.stream(tol.o()).map(x -> 2 * x).toArray();
      double[] twiceLse = Arrays.stream(tol.lse()).map(x -> 2 * x).toArray();
      Agreement ao = Agreement.of("o", 128, Arrays.copyOfRange(oAll, 0, 1024), Arrays.copyOfRange(oAll, 1024, 2048),
          twice);
      Agreement al = Agreement.of("lse", 1, Arrays.copyOfRange(lseAll, 0, 8), Arrays.copyOfRange(lseAll, 8, 16),
          twiceLse);
      assertTrue(ao.passed(), () -> "cut " + cut + ": " + ao.detail());
      assertTrue(al.passed(), () -> "cut " + cut + ": " + al.detail());
    }
  }

  @ParameterizedTest
  @EnumSource(CpuIsa.class)
  void mergeInEitherOrderAgrees(CpuIsa isa) {
    // The same two states swapped: the header promises a commutative merge.
    use(isa);
    SplittableRandom rng = new SplittableRandom(seed);
    int n = 65 * 256;
    double[] oA = RandomInputs.uniform(rng, n, -1, 1, DType.BF16);
    double[] oB = RandomInputs.uniform(rng, n, -1, 1, DType.BF16);
    double[] lseA = RandomInputs.uniform(rng, 65, -4, 4, DType.F32);
    double[] lseB = RandomInputs.uniform(rng, 65, -4, 4, DType.F32);
    try (DeviceTensors t = new DeviceTensors(stream)) {
      Buffer o1 = t.upload(DType.BF16, oA);
      Buffer o2 = t.upload(DType.BF16, oB);
      Buffer l1 = t.upload(DType.F32, lseA);
      Buffer l2 = t.upload(DType.F32, lseB);
      Buffer ab = t.poisoned(DType.BF16, n);
      Buffer ba = t.poisoned(DType.BF16, n);
      Buffer lab = t.poisoned(DType.F32, 65);
      Buffer lba = t.poisoned(DType.F32, 65);
      Ops.mergeState(stream, DType.BF16, o1, l1, o2, l2, ab, lab, 65, 256);
      Ops.mergeState(stream, DType.BF16, o2, l2, o1, l1, ba, lba, 65, 256);
      ReferenceOps.State ref = ReferenceOps.mergeState(65, 256, oA, lseA, oB, lseB);
      ErrorBounds.Tolerance tol = ErrorBounds.mergeStates(2, 65, 256, ReferenceOps.concat(oA, oB),
          ReferenceOps.concat(lseA, lseB), ref, DType.BF16);
      double[] twice = Arrays.stream(tol.o()).map(x -> 2 * x).toArray();
      Agreement a = Agreement.of("o", 256, t.download(ab, DType.BF16, n), t.download(ba, DType.BF16, n), twice);
      assertTrue(a.passed(), a::detail);
      Agreement l = Agreement.of("lse", 1, t.download(lab, DType.F32, 65), t.download(lba, DType.F32, 65),
          Arrays.stream(tol.lse()).map(x -> 2 * x).toArray());
      assertTrue(l.passed(), l::detail);
    }
  }

  @ParameterizedTest
  @EnumSource(CpuIsa.class)
  void outputsMayLiveInAnyHostTierAndAlias(CpuIsa isa) {
    use(isa);
    SplittableRandom rng = new SplittableRandom(seed);
    int rows = 33;
    int d = 64;
    double[] o = RandomInputs.uniform(rng, 2 * rows * d, -1, 1, DType.F32);
    double[] lse = RandomInputs.uniform(rng, 2 * rows, -3, 3, DType.F32);
    ReferenceOps.State ref = ReferenceOps.mergeStates(2, rows, d, o, lse);
    ErrorBounds.Tolerance tol = ErrorBounds.mergeStates(2, rows, d, o, lse, ref, DType.F32);
    for (MemoryTier tier : List.of(MemoryTier.PINNED_HOST, MemoryTier.HOST)) {
      try (Buffer states = Buffer.allocate(Backend.CPU, 0, tier, 2L * rows * d * 4);
          Buffer lses = Buffer.allocate(Backend.CPU, 0, tier, 2L * rows * 4)) {
        states.put(0, DeviceTensors.toFloats(o));
        lses.put(0, DeviceTensors.toFloats(lse));
        // o_out aliases o_a (allowed by the header); lse_out is separate.
        try (Buffer lseOut = Buffer.host(rows * 4L)) {
          Ops.mergeState(stream, DType.F32, states, lses, states.at((long) rows * d), lses.at(rows), states, lseOut,
              rows, d);
          float[] got = new float[rows * d];
          states.get(0, got);
          double[] gotD = new double[got.length];
          for (int i = 0; i < got.length; i++) {
            gotD[i] = got[i];
          }
          Agreement a = Agreement.of("o", d, ref.o(), gotD, tol.o());
          assertTrue(a.passed(), () -> tier + ": " + a.detail());
        }
      }
    }
  }
}
