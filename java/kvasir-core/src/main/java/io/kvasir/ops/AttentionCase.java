package io.kvasir.ops;

import io.kvasir.nativeapi.AttentionShape;
import io.kvasir.nativeapi.Buffer;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Ops;
import io.kvasir.nativeapi.Stream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Single-query attention on random q, k, v. q and k have unit variance, so with the usual
 * 1/sqrt(d) scale the scores have unit variance too and the softmax is far from uniform: a key
 * read from the wrong head or skipped shows in the output.
 */
final class AttentionCase extends CheckCase {
  private static final double QK_LIMIT = Math.sqrt(3); // U(-sqrt 3, sqrt 3) has variance 1

  private final DType dtype;
  private final AttentionShape shape;
  private final float scale;
  private final double[] q;
  private final double[] k;
  private final double[] v;

  AttentionCase(DType dtype, AttentionShape shape, long seed) {
    super(seed);
    this.dtype = dtype;
    this.shape = shape;
    this.scale = shape.defaultScale();
    SplittableRandom rng = new SplittableRandom(seed);
    int qn = Math.toIntExact(shape.queryElements());
    int kvn = Math.toIntExact(shape.kvElements());
    q = RandomInputs.uniform(rng, qn, -QK_LIMIT, QK_LIMIT, dtype);
    k = RandomInputs.uniform(rng, kvn, -QK_LIMIT, QK_LIMIT, dtype);
    v = RandomInputs.uniform(rng, kvn, -1, 1, dtype);
    ReferenceOps.State ref = ReferenceOps.attentionDecode(shape, scale, q, k, v);
    ErrorBounds.Tolerance tol = ErrorBounds.attentionDecode(shape, scale, q, k, v, ref, dtype);
    expected.put("o", new Expected(ref.o(), tol.o(), shape.headDim()));
    expected.put("lse", new Expected(ref.lse(), tol.lse(), 1));
  }

  @Override
  String name() {
    return "attention_decode[" + dtype.name().toLowerCase() + ",d=" + shape.headDim() + ",b=" + shape.batch() + ",hq="
        + shape.numQHeads() + ",hkv=" + shape.numKvHeads() + ",L=" + shape.kvLen() + "]";
  }

  @Override
  Map<String, double[]> run(Stream stream) {
    int qn = Math.toIntExact(shape.queryElements());
    int rows = Math.toIntExact(shape.lseElements());
    try (DeviceTensors t = new DeviceTensors(stream)) {
      Buffer qb = t.upload(dtype, q);
      Buffer kb = shape.kvLen() > 0 ? t.upload(dtype, k) : null;
      Buffer vb = shape.kvLen() > 0 ? t.upload(dtype, v) : null;
      Buffer ob = t.poisoned(dtype, qn);
      Buffer lseb = t.poisoned(DType.F32, rows);
      long workspaceBytes = Ops.attentionDecodeWorkspaceBytes(stream, shape);
      Buffer workspace = workspaceBytes > 0 ? t.allocate(workspaceBytes) : null;
      Ops.attentionDecode(stream, dtype, shape, scale, qb, kb, vb, ob, lseb, workspace);
      Map<String, double[]> out = new LinkedHashMap<>();
      out.put("o", t.download(ob, dtype, qn));
      out.put("lse", t.download(lseb, DType.F32, rows));
      return out;
    }
  }
}
