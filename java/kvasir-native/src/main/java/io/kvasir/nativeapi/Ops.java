package io.kvasir.nativeapi;

import java.util.Objects;

/**
 * The kernels of the C ABI, with every tensor checked against the {@link BufferView} it is given
 * before native code runs: a tensor must lie inside its buffer from the view's offset (in elements
 * of its dtype; lse is always fp32, page indices int64, page regions count pages), be open and be
 * memory the stream's kernels can address. Those checks throw {@link IllegalArgumentException}
 * naming the argument; rules about values (supported head_dim, GQA ratios, scales, page indices)
 * belong to the library and come back as {@link KvasirException}.
 *
 * <p>Calls are ordered on the stream and may return before the work is done on CUDA.
 *
 * <p>Attention states, as in the header: {@code lse = ln sum exp(s_i)}, {@code o = sum
 * exp(s_i - lse) v_i}; {@code lse = -inf} is the empty state, whose o is ignored. Merging only
 * empty states gives o = 0, lse = -inf. Arithmetic is fp32 in every dtype.
 */
public final class Ops {
  private static final int LSE_BYTES = Float.BYTES;
  private static final int INDEX_BYTES = Long.BYTES;

  private Ops() {}

  /**
   * {@code (oOut, lseOut) <- merge((oA, lseA), (oB, lseB))} for {@code rows} states of
   * {@code headDim}. o tensors are {@code [rows][headDim]} of {@code dtype}, lse tensors
   * {@code [rows]} fp32. {@code oOut} may alias {@code oA} or {@code oB}.
   */
  public static void mergeState(Stream stream, DType dtype, BufferView oA, BufferView lseA, BufferView oB,
      BufferView lseB, BufferView oOut, BufferView lseOut, long rows, int headDim) {
    Objects.requireNonNull(stream, "stream");
    Objects.requireNonNull(dtype, "dtype");
    long n = stateElements(rows, headDim, 1);
    int es = dtype.byteSize();
    KvasirException.check(KvasirLibrary.kv_merge_state_async(stream.nativeHandle(), dtype.code(),
        Checks.tensor(stream, oA, "o_a", n, es), Checks.tensor(stream, lseA, "lse_a", rows, LSE_BYTES),
        Checks.tensor(stream, oB, "o_b", n, es), Checks.tensor(stream, lseB, "lse_b", rows, LSE_BYTES),
        Checks.tensor(stream, oOut, "o_out", n, es), Checks.tensor(stream, lseOut, "lse_out", rows, LSE_BYTES),
        rows, headDim));
  }

  /** {@code (o, lse) <- merge((o, lse), (oOther, lseOther))}, in place. Shapes as {@link #mergeState}. */
  public static void mergeStateInPlace(Stream stream, DType dtype, BufferView o, BufferView lse, BufferView oOther,
      BufferView lseOther, long rows, int headDim) {
    Objects.requireNonNull(stream, "stream");
    Objects.requireNonNull(dtype, "dtype");
    long n = stateElements(rows, headDim, 1);
    int es = dtype.byteSize();
    KvasirException.check(KvasirLibrary.kv_merge_state_inplace_async(stream.nativeHandle(), dtype.code(),
        Checks.tensor(stream, o, "o", n, es), Checks.tensor(stream, lse, "lse", rows, LSE_BYTES),
        Checks.tensor(stream, oOther, "o_other", n, es), Checks.tensor(stream, lseOther, "lse_other", rows, LSE_BYTES),
        rows, headDim));
  }

  /**
   * N-way merge: {@code oStates [numStates][rows][headDim]} ({@code dtype}),
   * {@code lseStates [numStates][rows]} into {@code oOut [rows][headDim]}, {@code lseOut [rows]}
   * ({@code lseOut} may be null).
   */
  public static void mergeStates(Stream stream, DType dtype, BufferView oStates, BufferView lseStates, int numStates,
      BufferView oOut, BufferView lseOut, long rows, int headDim) {
    Objects.requireNonNull(stream, "stream");
    Objects.requireNonNull(dtype, "dtype");
    Checks.nonNegative("num_states", numStates);
    long n = stateElements(rows, headDim, 1);
    int es = dtype.byteSize();
    KvasirException.check(KvasirLibrary.kv_merge_states_async(stream.nativeHandle(), dtype.code(),
        Checks.tensor(stream, oStates, "o_states", stateElements(rows, headDim, numStates), es),
        Checks.tensor(stream, lseStates, "lse_states", Checks.elements("lse_states", numStates, rows), LSE_BYTES),
        numStates, Checks.tensor(stream, oOut, "o_out", n, es),
        Checks.optionalTensor(stream, lseOut, "lse_out", rows, LSE_BYTES), rows, headDim));
  }

  /**
   * Single-query attention over contiguous K/V (see {@link AttentionShape} for the layouts),
   * writing the attention state {@code (o, lse)}; {@code lse} may be null. {@code k} and
   * {@code v} may be null when {@code kvLen} is 0 (the result is the empty state).
   *
   * @param workspace scratch of {@link #attentionDecodeWorkspaceBytes} bytes (its offset counts
   *     bytes) that lets CUDA split the KV; null or smaller only splits less
   */
  public static void attentionDecode(Stream stream, DType dtype, AttentionShape shape, float smScale, BufferView q,
      BufferView k, BufferView v, BufferView o, BufferView lse, BufferView workspace) {
    Objects.requireNonNull(stream, "stream");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(shape, "shape");
    int es = dtype.byteSize();
    long qn = shape.queryElements();
    long kvn = shape.kvElements();
    long kAddress;
    long vAddress;
    if (shape.kvLen() == 0) {
      kAddress = Checks.optionalTensor(stream, k, "k", 0, es);
      vAddress = Checks.optionalTensor(stream, v, "v", 0, es);
    } else {
      kAddress = Checks.tensor(stream, k, "k", kvn, es);
      vAddress = Checks.tensor(stream, v, "v", kvn, es);
    }
    long workspaceAddress = 0;
    long workspaceBytes = 0;
    if (workspace != null) {
      Checks.requireKernelMemory(stream, workspace.buffer(), "workspace");
      workspaceBytes = workspace.buffer().sizeBytes() - workspace.offset();
      if (workspaceBytes <= 0) {
        throw new IllegalArgumentException("workspace offset " + workspace.offset() + " leaves no bytes in "
            + workspace.buffer());
      }
      workspaceAddress = workspace.buffer().address() + workspace.offset();
    }
    KvasirException.check(KvasirLibrary.kv_attention_decode_async(stream.nativeHandle(), dtype.code(),
        Checks.tensor(stream, q, "q", qn, es), kAddress, vAddress, Checks.tensor(stream, o, "o", qn, es),
        Checks.optionalTensor(stream, lse, "lse", shape.lseElements(), LSE_BYTES), shape.batch(), shape.numQHeads(),
        shape.numKvHeads(), shape.headDim(), shape.kvLen(), smScale, workspaceAddress, workspaceBytes));
  }

  /** Workspace bytes that let {@link #attentionDecode} split as much as it wants (0 on the CPU). */
  public static long attentionDecodeWorkspaceBytes(Stream stream, AttentionShape shape) {
    Objects.requireNonNull(stream, "stream");
    Objects.requireNonNull(shape, "shape");
    return KvasirLibrary.kv_attention_decode_workspace_bytes(stream.nativeHandle(), shape.batch(), shape.numQHeads(),
        shape.headDim(), shape.kvLen());
  }

  /**
   * Batched page copy, the recall primitive: for i in [0, numPages), page {@code dstPages[i]} of
   * {@code dst} gets page {@code srcPages[i]} of {@code src}, {@code pageBytes} each, bit-exact.
   * Regions count pages: a view's offset is in pages and its capacity is the whole pages from
   * there to the end of its buffer. Index lists are int64 in stream memory; null means i (so a
   * null {@code srcPages} is a scatter and a null {@code dstPages} a gather). An index outside a
   * region's capacity fails the call (CPU) or the next {@link Stream#synchronize()} (CUDA).
   * Destination pages must not overlap each other or any source page.
   */
  public static void pageCopy(Stream stream, BufferView dst, BufferView src, long pageBytes, BufferView srcPages,
      BufferView dstPages, long numPages) {
    Objects.requireNonNull(stream, "stream");
    if (pageBytes <= 0) {
      throw new IllegalArgumentException("page_bytes=" + pageBytes + " must be > 0");
    }
    Checks.nonNegative("num_pages", numPages);
    long dstCapacity = regionPages(stream, dst, "dst", pageBytes);
    long srcCapacity = regionPages(stream, src, "src", pageBytes);
    // offset <= pages, so offset * pageBytes <= sizeBytes: no overflow.
    long dstAddress = dst.buffer().address() + dst.offset() * pageBytes;
    long srcAddress = src.buffer().address() + src.offset() * pageBytes;
    KvasirException.check(KvasirLibrary.kv_page_copy_async(stream.nativeHandle(), dstAddress, dstCapacity,
        srcAddress, srcCapacity, pageBytes,
        Checks.optionalTensor(stream, srcPages, "src_pages", numPages, INDEX_BYTES),
        Checks.optionalTensor(stream, dstPages, "dst_pages", numPages, INDEX_BYTES), numPages));
  }

  /** Whole pages from the view's offset (in pages) to the end of its buffer. */
  private static long regionPages(Stream stream, BufferView region, String name, long pageBytes) {
    if (region == null) {
      throw new IllegalArgumentException(name + " is null");
    }
    Checks.requireKernelMemory(stream, region.buffer(), name);
    long pages = region.buffer().sizeBytes() / pageBytes;
    if (region.offset() > pages) {
      throw new IllegalArgumentException(name + " starts at page " + region.offset() + " but " + region.buffer()
          + " holds " + pages + " pages of " + pageBytes + " bytes");
    }
    return pages - region.offset();
  }

  private static long stateElements(long rows, int headDim, int states) {
    Checks.nonNegative("rows", rows);
    Checks.nonNegative("head_dim", headDim);
    return Checks.elements("o", states, rows, headDim);
  }
}
