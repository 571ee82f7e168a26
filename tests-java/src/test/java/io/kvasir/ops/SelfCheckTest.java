package io.kvasir.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvasir.nativeapi.AttentionShape;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Devices;
import io.kvasir.nativeapi.Stream;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

class SelfCheckTest {
  @Test
  void passesOnTheCpu() {
    SelfCheckReport report = SelfCheck.builder().optCuda(false).build().run();
    assertTrue(report.passed(), () -> failures(report));
    BackendReport cpu = report.backends().get(0);
    assertEquals(Backend.CPU, cpu.backend());
    List<String> names = cpu.checks().stream().map(CheckResult::name).collect(Collectors.toList());
    for (String op : List.of("merge_state[", "merge_state_inplace[", "merge_states[f32,n=3", "merge_states[bf16,n=3",
        "attention_decode[f32,d=64", "attention_decode[bf16,d=256", "L=1000", "page_copy[gather", "page_copy[scatter")) {
      assertTrue(names.stream().anyMatch(n -> n.contains(op)), op + " missing from " + names);
    }
    for (CheckResult c : cpu.checks()) {
      assertTrue(c.maxError() <= c.tolerance(), c.toString());
      assertNotEquals(0, c.seed(), c.toString());
    }
  }

  @Test
  void cudaIsCheckedAndComparedWithTheCpuWhenPresent() {
    assumeTrue(Devices.count(Backend.CUDA).available(), "no CUDA device");
    SelfCheckReport report = SelfCheck.builder().build().run();
    assertTrue(report.passed(), () -> failures(report));
    BackendReport cuda = report.backends().stream().filter(b -> b.backend() == Backend.CUDA).findFirst().orElseThrow();
    assertTrue(cuda.checks().stream().anyMatch(c -> c.name().endsWith(" vs cpu")));
  }

  @Test
  void aFixedSeedReplaysTheSameInputs() {
    long seed = ThreadLocalRandom.current().nextLong();
    List<CheckCase> a = SelfCheck.cases(seed);
    List<CheckCase> b = SelfCheck.cases(seed);
    assertEquals(a.size(), b.size());
    for (int i = 0; i < a.size(); i++) {
      assertEquals(a.get(i).seed(), b.get(i).seed());
      assertTrue(Arrays.equals(a.get(i).expected().values().iterator().next().values(),
          b.get(i).expected().values().iterator().next().values()));
    }
    assertNotEquals(a.get(0).seed(), SelfCheck.cases(seed + 1).get(0).seed());
    assertEquals(seed, SelfCheck.builder().optSeed(seed).build().seed());
  }

  @Test
  void unwrittenOutputsFail() {
    // Outputs start as NaN; an element the kernel skipped stays NaN and must never pass.
    Agreement a = Agreement.of("o", 2, new double[] {1, 2, 3, 4}, new double[] {1, 2, Double.NaN, 4},
        new double[] {1, 1, 1e9, 1});
    assertFalse(a.passed());
    assertEquals("o[1][0]", a.where());
    assertTrue(a.detail().contains("not written"), a.detail());
    Agreement inf = Agreement.of("lse", 1, new double[] {Double.NEGATIVE_INFINITY}, new double[] {-1e30},
        new double[] {1e31});
    assertFalse(inf.passed(), "the empty state must be exactly -inf");
  }

  @Test
  void theBoundsCatchADroppedBlockOfKeys() {
    // A kernel that skipped the last 64 of 1000 keys must fail: the bound is not vacuous.
    long seed = ThreadLocalRandom.current().nextLong();
    SplittableRandom rng = new SplittableRandom(seed);
    AttentionShape whole = new AttentionShape(1, 8, 2, 128, 1000);
    AttentionShape shortened = new AttentionShape(1, 8, 2, 128, 936);
    double[] q = RandomInputs.uniform(rng, 8 * 128, -1.7, 1.7, DType.F32);
    double[] k = RandomInputs.uniform(rng, 1000 * 256, -1.7, 1.7, DType.F32);
    double[] v = RandomInputs.uniform(rng, 1000 * 256, -1, 1, DType.F32);
    ReferenceOps.State ref = ReferenceOps.attentionDecode(whole, 0.088, q, k, v);
    ErrorBounds.Tolerance tol = ErrorBounds.attentionDecode(whole, 0.088, q, k, v, ref, DType.F32);
    ReferenceOps.State buggy = ReferenceOps.attentionDecode(shortened, 0.088, q, Arrays.copyOf(k, 936 * 256),
        Arrays.copyOf(v, 936 * 256));
    assertFalse(Agreement.of("o", 128, ref.o(), buggy.o(), tol.o()).passed(), "seed " + seed);
    assertFalse(Agreement.of("lse", 1, ref.lse(), buggy.lse(), tol.lse()).passed(), "seed " + seed);
  }

  @Test
  void theBoundsCatchTheWrongKvHead() {
    // Reading KV head h % Hkv instead of h / (Hq / Hkv) is the classic GQA bug.
    long seed = ThreadLocalRandom.current().nextLong();
    AttentionCase c = new AttentionCase(DType.BF16, new AttentionShape(1, 4, 2, 64, 200), seed);
    try (Stream stream = Stream.cpu()) {
      Map<String, double[]> out = c.run(stream);
      double[] o = out.get("o");
      double[] swapped = o.clone();
      System.arraycopy(o, 64, swapped, 128, 64); // head 2 gets head 1's output (KV head 0 instead of 1)
      CheckCase.Expected want = c.expected().get("o");
      assertTrue(Agreement.of("o", 64, want.values(), o, want.tolerance()).passed());
      assertFalse(Agreement.of("o", 64, want.values(), swapped, want.tolerance()).passed(), "seed " + seed);
    }
  }

  private static String failures(SelfCheckReport report) {
    return "seed " + report.seed() + ": " + report.backends().stream().flatMap(b -> b.checks().stream())
        .filter(c -> !c.passed()).map(CheckResult::toString).collect(Collectors.joining("; "));
  }
}
