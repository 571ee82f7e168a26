package io.kvasir.ops;

import io.kvasir.nativeapi.Buffer;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Ops;
import io.kvasir.nativeapi.Stream;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The attention-state merges (pair, in place, N-way) on random states. About one input state in
 * ten is empty (lse = -inf) with NaN in its o, which the kernel must ignore; row 0 is empty in
 * every input (the result must be exactly o = 0, lse = -inf) and row 1 in all inputs but one.
 */
final class MergeCase extends CheckCase {
  enum Kind {
    PAIR("merge_state"),
    IN_PLACE("merge_state_inplace"),
    N_WAY("merge_states");

    final String op;

    Kind(String op) {
      this.op = op;
    }
  }

  private final Kind kind;
  private final DType dtype;
  private final int numStates;
  private final int rows;
  private final int headDim;
  private final double[] o; // [numStates][rows][headDim]
  private final double[] lse; // [numStates][rows]

  MergeCase(Kind kind, DType dtype, int numStates, int rows, int headDim, long seed) {
    super(seed);
    if (kind != Kind.N_WAY && numStates != 2) {
      throw new IllegalArgumentException(kind.op + " merges exactly 2 states");
    }
    this.kind = kind;
    this.dtype = dtype;
    this.numStates = numStates;
    this.rows = rows;
    this.headDim = headDim;
    SplittableRandom rng = new SplittableRandom(seed);
    o = RandomInputs.uniform(rng, numStates * rows * headDim, -1, 1, dtype);
    lse = RandomInputs.uniform(rng, numStates * rows, -4, 4, DType.F32);
    for (int i = 0; i < numStates; i++) {
      for (int r = 0; r < rows; r++) {
        boolean empty = r == 0 || (r == 1 && i > 0) || rng.nextInt(10) == 0;
        if (empty) {
          lse[i * rows + r] = Double.NEGATIVE_INFINITY;
          Arrays.fill(o, (i * rows + r) * headDim, (i * rows + r + 1) * headDim, Double.NaN);
        }
      }
    }
    ReferenceOps.State ref = ReferenceOps.mergeStates(numStates, rows, headDim, o, lse);
    ErrorBounds.Tolerance tol = ErrorBounds.mergeStates(numStates, rows, headDim, o, lse, ref, dtype);
    expected.put("o", new Expected(ref.o(), tol.o(), headDim));
    expected.put("lse", new Expected(ref.lse(), tol.lse(), 1));
  }

  @Override
  String name() {
    return kind.op + "[" + dtype.name().toLowerCase() + (kind == Kind.N_WAY ? ",n=" + numStates : "") + ",rows=" + rows
        + ",d=" + headDim + "]";
  }

  @Override
  Map<String, double[]> run(Stream stream) {
    int n = rows * headDim;
    try (DeviceTensors t = new DeviceTensors(stream)) {
      Buffer outO;
      Buffer outLse;
      switch (kind) {
        case PAIR -> {
          Buffer oA = t.upload(dtype, Arrays.copyOfRange(o, 0, n));
          Buffer oB = t.upload(dtype, Arrays.copyOfRange(o, n, 2 * n));
          Buffer lseA = t.upload(DType.F32, Arrays.copyOfRange(lse, 0, rows));
          Buffer lseB = t.upload(DType.F32, Arrays.copyOfRange(lse, rows, 2 * rows));
          outO = t.poisoned(dtype, n);
          outLse = t.poisoned(DType.F32, rows);
          Ops.mergeState(stream, dtype, oA, lseA, oB, lseB, outO, outLse, rows, headDim);
        }
        case IN_PLACE -> {
          // The in-place result overwrites state a, whose empty rows hold NaN: a row the kernel
          // skips keeps NaN and fails, just as a poisoned output would.
          outO = t.upload(dtype, Arrays.copyOfRange(o, 0, n));
          outLse = t.upload(DType.F32, Arrays.copyOfRange(lse, 0, rows));
          Buffer other = t.upload(dtype, Arrays.copyOfRange(o, n, 2 * n));
          Buffer otherLse = t.upload(DType.F32, Arrays.copyOfRange(lse, rows, 2 * rows));
          Ops.mergeStateInPlace(stream, dtype, outO, outLse, other, otherLse, rows, headDim);
        }
        case N_WAY -> {
          Buffer states = t.upload(dtype, o);
          Buffer statesLse = t.upload(DType.F32, lse);
          outO = t.poisoned(dtype, n);
          outLse = t.poisoned(DType.F32, rows);
          Ops.mergeStates(stream, dtype, states, statesLse, numStates, outO, outLse, rows, headDim);
        }
        default -> throw new IllegalStateException(kind.toString());
      }
      Map<String, double[]> out = new LinkedHashMap<>();
      out.put("o", t.download(outO, dtype, n));
      out.put("lse", t.download(outLse, DType.F32, rows));
      return out;
    }
  }
}
