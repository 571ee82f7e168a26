package io.kvasir.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.nativeapi.AttentionShape;
import io.kvasir.nativeapi.DType;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The Java references against the header's definitions, with no native code involved. */
class ReferenceOpsTest {
  private static final Logger LOG = LogManager.getLogger(ReferenceOpsTest.class);
  private static final double EPS = 1e-12;

  private SplittableRandom rng;

  @BeforeEach
  void seed() {
    long seed = ThreadLocalRandom.current().nextLong();
    LOG.info("seed {}", seed);
    rng = new SplittableRandom(seed);
  }

  private double[] uniform(int n, double lo, double hi) {
    return RandomInputs.uniform(rng, n, lo, hi, DType.F32);
  }

  private static void assertClose(double[] want, double[] got, String what) {
    assertEquals(want.length, got.length);
    for (int i = 0; i < want.length; i++) {
      double tol = EPS * Math.max(1, Math.abs(want[i]));
      assertTrue(want[i] == got[i] || Math.abs(want[i] - got[i]) <= tol, what + "[" + i + "]: " + got[i] + " vs " + want[i]);
    }
  }

  @Test
  void attentionOverAllKeysIsTheMergeOfItsParts() {
    // The identity the whole design rests on: any split of the keys, merged, is the whole.
    AttentionShape whole = new AttentionShape(2, 4, 2, 64, 300);
    double scale = whole.defaultScale();
    double[] q = uniform((int) whole.queryElements(), -1.7, 1.7);
    double[] k = uniform((int) whole.kvElements(), -1.7, 1.7);
    double[] v = uniform((int) whole.kvElements(), -1, 1);
    ReferenceOps.State full = ReferenceOps.attentionDecode(whole, scale, q, k, v);

    int cut = 1 + rng.nextInt(298);
    AttentionShape first = new AttentionShape(2, 4, 2, 64, cut);
    AttentionShape rest = new AttentionShape(2, 4, 2, 64, 300 - cut);
    ReferenceOps.State a = ReferenceOps.attentionDecode(first, scale, q, tokens(k, 2, 300, 128, 0, cut),
        tokens(v, 2, 300, 128, 0, cut));
    ReferenceOps.State b = ReferenceOps.attentionDecode(rest, scale, q, tokens(k, 2, 300, 128, cut, 300),
        tokens(v, 2, 300, 128, cut, 300));
    ReferenceOps.State merged = ReferenceOps.mergeState(8, 64, a.o(), a.lse(), b.o(), b.lse());
    assertClose(full.o(), merged.o(), "o");
    assertClose(full.lse(), merged.lse(), "lse");
  }

  /** Tokens [from, to) of a [batch][len][rowElements] tensor. */
  private static double[] tokens(double[] x, int batch, int len, int rowElements, int from, int to) {
    double[] out = new double[batch * (to - from) * rowElements];
    for (int b = 0; b < batch; b++) {
      System.arraycopy(x, (b * len + from) * rowElements, out, b * (to - from) * rowElements, (to - from) * rowElements);
    }
    return out;
  }

  @Test
  void mergeIsCommutativeAndAssociative() {
    int rows = 5;
    int d = 8;
    double[] o = uniform(3 * rows * d, -1, 1);
    double[] lse = uniform(3 * rows, -5, 5);
    ReferenceOps.State all = ReferenceOps.mergeStates(3, rows, d, o, lse);
    double[] o0 = Arrays.copyOfRange(o, 0, rows * d);
    double[] o1 = Arrays.copyOfRange(o, rows * d, 2 * rows * d);
    double[] o2 = Arrays.copyOfRange(o, 2 * rows * d, 3 * rows * d);
    double[] l0 = Arrays.copyOfRange(lse, 0, rows);
    double[] l1 = Arrays.copyOfRange(lse, rows, 2 * rows);
    double[] l2 = Arrays.copyOfRange(lse, 2 * rows, 3 * rows);
    ReferenceOps.State s21 = ReferenceOps.mergeState(rows, d, o2, l2, o1, l1);
    ReferenceOps.State left = ReferenceOps.mergeState(rows, d, s21.o(), s21.lse(), o0, l0);
    assertClose(all.o(), left.o(), "o");
    assertClose(all.lse(), left.lse(), "lse");
  }

  @Test
  void emptyStatesAreIgnoredAndOnlyEmptiesGiveTheEmptyState() {
    double[] oA = {1, 2};
    double[] oNaN = {Double.NaN, Double.NaN};
    double[] lseA = {0.5};
    double[] empty = {Double.NEGATIVE_INFINITY};
    ReferenceOps.State withEmpty = ReferenceOps.mergeState(1, 2, oA, lseA, oNaN, empty);
    assertEquals(1, withEmpty.o()[0]);
    assertEquals(2, withEmpty.o()[1]);
    assertEquals(0.5, withEmpty.lse()[0]);
    ReferenceOps.State bothEmpty = ReferenceOps.mergeState(1, 2, oNaN, empty, oNaN, empty);
    assertEquals(0, bothEmpty.o()[0]);
    assertEquals(0, bothEmpty.o()[1]);
    assertEquals(Double.NEGATIVE_INFINITY, bothEmpty.lse()[0]);
    ReferenceOps.State nan = ReferenceOps.mergeState(1, 2, oA, new double[] {Double.NaN}, oA, lseA);
    assertTrue(Double.isNaN(nan.lse()[0]) && Double.isNaN(nan.o()[0]));
  }

  @Test
  void mergeWeighsByExpLse() {
    // Two states with lse ln 1 and ln 3: weights 1/4 and 3/4, total ln 4.
    ReferenceOps.State s = ReferenceOps.mergeState(1, 1, new double[] {4}, new double[] {0},
        new double[] {8}, new double[] {Math.log(3)});
    assertEquals(7, s.o()[0], 1e-15);
    assertEquals(Math.log(4), s.lse()[0], 1e-15);
  }

  @Test
  void gqaQueryHeadReadsItsGroupsKvHead() {
    // Every KV head's values are its own constant, and all keys are equal: head h must see
    // exactly the constant of KV head h / (Hq / Hkv).
    AttentionShape shape = new AttentionShape(1, 6, 3, 64, 5);
    double[] q = uniform(6 * 64, -1, 1);
    double[] k = new double[5 * 3 * 64];
    double[] v = new double[5 * 3 * 64];
    for (int t = 0; t < 5; t++) {
      for (int h = 0; h < 3; h++) {
        Arrays.fill(v, (t * 3 + h) * 64, (t * 3 + h + 1) * 64, 10 + h);
      }
    }
    ReferenceOps.State s = ReferenceOps.attentionDecode(shape, 0.125, q, k, v);
    for (int h = 0; h < 6; h++) {
      assertEquals(10 + h / 2, s.o()[h * 64 + 17], 1e-12, "query head " + h);
      assertEquals(Math.log(5), s.lse()[h], 1e-12, "equal scores: lse = ln L");
    }
  }

  @Test
  void noKeysIsTheEmptyState() {
    ReferenceOps.State s = ReferenceOps.attentionDecode(new AttentionShape(2, 2, 1, 64, 0), 0.1, new double[256],
        new double[0], new double[0]);
    for (double x : s.o()) {
      assertEquals(0, x);
    }
    for (double l : s.lse()) {
      assertEquals(Double.NEGATIVE_INFINITY, l);
    }
  }

  @Test
  void shapesAreChecked() {
    assertThrows(IllegalArgumentException.class,
        () -> ReferenceOps.attentionDecode(new AttentionShape(1, 3, 2, 64, 1), 1, new double[192], new double[128],
            new double[128]));
    assertThrows(IllegalArgumentException.class,
        () -> ReferenceOps.mergeStates(2, 1, 4, new double[7], new double[2]));
  }
}
