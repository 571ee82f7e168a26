package io.kvasir.ops;

import io.kvasir.nativeapi.Buffer;
import io.kvasir.nativeapi.Ops;
import io.kvasir.nativeapi.Stream;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Batched page copy on random bytes: a gather (identity destination), a scatter (identity
 * source) or a general permutation. The destination region starts filled with a poison byte and
 * has more pages than are copied, so the check is bit-exact on the copied pages and proves the
 * untouched pages were left alone.
 */
final class PageCopyCase extends CheckCase {
  enum Kind {
    GATHER,
    SCATTER,
    PERMUTE
  }

  static final byte POISON = (byte) 0xA5;

  private final Kind kind;
  private final int pageBytes;
  private final int srcCapacity;
  private final int dstCapacity;
  private final byte[] src;
  private final long[] srcPages; // null: identity
  private final long[] dstPages; // null: identity
  private final int numPages;

  PageCopyCase(Kind kind, int pageBytes, int numPages, int srcCapacity, int dstCapacity, long seed) {
    super(seed);
    this.kind = kind;
    this.pageBytes = pageBytes;
    this.numPages = numPages;
    this.srcCapacity = srcCapacity;
    this.dstCapacity = dstCapacity;
    SplittableRandom rng = new SplittableRandom(seed);
    src = new byte[srcCapacity * pageBytes];
    for (int i = 0; i < src.length; i++) {
      src[i] = (byte) rng.nextInt(256);
    }
    srcPages = kind == Kind.SCATTER ? null : RandomInputs.distinct(rng, numPages, srcCapacity);
    dstPages = kind == Kind.GATHER ? null : RandomInputs.distinct(rng, numPages, dstCapacity);

    byte[] want = new byte[dstCapacity * pageBytes];
    Arrays.fill(want, POISON);
    for (int i = 0; i < numPages; i++) {
      int s = srcPages == null ? i : (int) srcPages[i];
      int d = dstPages == null ? i : (int) dstPages[i];
      System.arraycopy(src, s * pageBytes, want, d * pageBytes, pageBytes);
    }
    expected.put("dst", new Expected(unsigned(want), new double[want.length], pageBytes));
  }

  @Override
  String name() {
    return "page_copy[" + kind.name().toLowerCase() + ",page_bytes=" + pageBytes + ",pages=" + numPages + "]";
  }

  @Override
  Map<String, double[]> run(Stream stream) {
    try (DeviceTensors t = new DeviceTensors(stream)) {
      Buffer srcBuffer = t.upload(src);
      byte[] poison = new byte[dstCapacity * pageBytes];
      Arrays.fill(poison, POISON);
      Buffer dstBuffer = t.upload(poison);
      Buffer srcList = srcPages == null ? null : t.upload(srcPages);
      Buffer dstList = dstPages == null ? null : t.upload(dstPages);
      Ops.pageCopy(stream, dstBuffer, srcBuffer, pageBytes, srcList, dstList, numPages);
      return Map.of("dst", unsigned(t.downloadBytes(dstBuffer, poison.length)));
    }
  }

  private static double[] unsigned(byte[] bytes) {
    double[] out = new double[bytes.length];
    for (int i = 0; i < bytes.length; i++) {
      out[i] = bytes[i] & 0xFF;
    }
    return out;
  }
}
