// kv_paged_prefill_async on CUDA. bf16 with head_dim 64 or 128 runs the FlashAttention-2 style
// tensor-core kernel shared with the contiguous op (attention_prefill_kernel.cuh, paged
// policy); f32 and head_dim 256 run a simple kernel, one warp per (query row, head), walking
// the sequence's pages in order: correct, not fast, and the same arithmetic in the same order
// as the contiguous simple kernel, so both give identical results on the same K/V.
//
// The grid is planned on the host from batch and max_q_len only (no device metadata is read
// on the host): blocks of a sequence past its q_len exit at once.
#include <cuda_runtime.h>

#include <climits>

#include "cuda/attention_prefill_kernel.cuh"
#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/paged_prefill.h"

namespace kv::cuda {
namespace {

constexpr int kSimpleWarps = 4;

struct PagedSimpleParams {
  const void* q;  // [rows][num_q_heads][D]
  const void* k;  // pool bases
  const void* v;
  void* o;
  float* lse;
  int32_t batch, max_q_len, num_q_heads, num_kv_heads;
  float scale_log2;
  PagedPrefillExtra x;
};

template <typename T, int D>
__global__ void __launch_bounds__(kSimpleWarps * 32) paged_prefill_simple_kernel(const PagedSimpleParams p) {
  constexpr int E = D / 32;
  const int lane = threadIdx.x & 31;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kSimpleWarps + (threadIdx.x >> 5);
  if (item >= static_cast<int64_t>(p.batch) * p.max_q_len * p.num_q_heads) return;
  const int32_t head = static_cast<int32_t>(item % p.num_q_heads);
  const int64_t rest = item / p.num_q_heads;
  const int32_t i = static_cast<int32_t>(rest % p.max_q_len);
  const int32_t b = static_cast<int32_t>(rest / p.max_q_len);
  const PagedPrefillExtra& x = p.x;
  const int32_t q_begin = x.q_indptr[b];
  const int32_t q_len = x.q_indptr[b + 1] - q_begin;
  const int32_t kv_len = x.kv_lens[b];
  if ((b == 0 && q_begin != 0) || q_len < 0 || q_len > x.max_q_len) {
    if (lane == 0)
      record_device_error(x.error, kDeviceErrorQIndptr, b == 0 && q_begin != 0 ? 0 : b + 1,
                          b == 0 && q_begin != 0 ? q_begin : q_len, x.max_q_len);
    return;
  }
  if (kv_len < q_len || kv_len > x.max_kv_len) {
    if (lane == 0) record_device_error(x.error, kDeviceErrorKvLenOutOfRange, b, kv_len, x.max_kv_len);
    return;
  }
  if (i >= q_len) return;
  const int32_t kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int32_t pos = kv_len - q_len + i;
  const int64_t item_row = (static_cast<int64_t>(q_begin) + i) * p.num_q_heads + head;  // (token, head)

  float q[E], acc[E];
  const T* qp = static_cast<const T*>(p.q) + item_row * D + lane * E;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    q[e] = load_scalar(qp + e) * p.scale_log2;
    acc[e] = 0.f;
  }
  const int64_t table_base = b * x.table_seq_stride + kv_head * x.table_head_stride;
  const int64_t head_offset = kv_head * x.head_stride + lane * E;
  SoftmaxState st;
  for (int32_t logical = 0; static_cast<int64_t>(logical) * x.page_tokens <= pos; ++logical) {
    const int32_t page = x.pages[table_base + logical];
    if (page < 0 || page >= x.num_pages) {
      if (lane == 0) record_device_error(x.error, kDeviceErrorPageIdOutOfRange, table_base + logical, page, x.num_pages);
      continue;  // the call fails at kv_stream_synchronize; skip the page
    }
    const int64_t base = page * x.page_stride + head_offset;
    const T* kp = static_cast<const T*>(p.k) + base;
    const T* vp = static_cast<const T*>(p.v) + base;
    const int32_t count = min(x.page_tokens, pos + 1 - logical * x.page_tokens);
    for (int32_t t = 0; t < count; ++t) {
      const int64_t off = t * x.token_stride;
      float dot = 0.f;
#pragma unroll
      for (int e = 0; e < E; ++e) dot = fmaf(q[e], load_scalar(kp + off + e), dot);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if (dot > st.m) {
        const float factor = st.rescale_to(dot);
#pragma unroll
        for (int e = 0; e < E; ++e) acc[e] *= factor;
      }
      const float pj = exp2f(dot - st.m);
      st.l += pj;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] = fmaf(pj, load_scalar(vp + off + e), acc[e]);
    }
  }
  const float inv = st.l > 0.f ? 1.f / st.l : 0.f;
  T* op = static_cast<T*>(p.o) + item_row * D + lane * E;
#pragma unroll
  for (int e = 0; e < E; ++e) store_scalar(op + e, acc[e] * inv);
  if (p.lse && lane == 0) p.lse[item_row] = st.lse();
}

template <typename T>
void launch_simple(const PagedSimpleParams& p, int d, unsigned blocks, cudaStream_t stream) {
  switch (d) {
    case 64: paged_prefill_simple_kernel<T, 64><<<blocks, kSimpleWarps * 32, 0, stream>>>(p); break;
    case 128: paged_prefill_simple_kernel<T, 128><<<blocks, kSimpleWarps * 32, 0, stream>>>(p); break;
    default: paged_prefill_simple_kernel<T, 256><<<blocks, kSimpleWarps * 32, 0, stream>>>(p); break;
  }
  KV_CUDA_CHECK_LAUNCH();
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

void paged_prefill(Stream* s, const PagedPrefillArgs& a) {
  if (a.batch == 0 || a.max_q_len == 0) return;
  DeviceGuard guard(s->device);
  PagedPrefillExtra x;
  x.q_indptr = a.q_indptr;
  x.kv_lens = a.table.kv_lens;
  x.pages = a.table.pages;
  x.table_seq_stride = a.table.seq_stride;
  x.table_head_stride = a.table.head_stride;
  x.page_stride = a.kv.page_stride;
  x.head_stride = a.kv.head_stride;
  x.token_stride = a.kv.token_stride;
  x.num_pages = a.kv.num_pages;
  x.page_tokens = a.kv.page_tokens;
  x.max_q_len = a.max_q_len;
  x.max_kv_len = a.max_kv_len;
  x.error = s->error_record;
  const int d = a.kv.head_dim;
  const float scale_log2 = a.sm_scale * kLog2e;

  if (a.dtype == KV_DTYPE_BF16 && (d == 64 || d == 128)) {
    KV_REQUIRE(aligned16(a.q) && aligned16(a.o),
               "q and o must be 16-byte aligned for bf16 paged prefill on CUDA (check sub-buffer offsets)");
    if (a.num_q_heads > 65535) fail(KV_STATUS_UNSUPPORTED, "num_q_heads=", a.num_q_heads, " exceeds 65535 blocks");
    constexpr int kRows = prefill_tc::kTileRows;
    PrefillParams p;
    p.q = static_cast<const uint16_t*>(a.q);
    p.k = static_cast<const uint16_t*>(a.kv.k);
    p.v = static_cast<const uint16_t*>(a.kv.v);
    p.o = static_cast<uint16_t*>(a.o);
    p.lse = a.lse;
    p.q_row_stride = p.o_row_stride = static_cast<int64_t>(a.num_q_heads) * d;
    p.kv_row_stride = 0;  // unused by the paged policy
    p.lse_row_stride = a.num_q_heads;
    p.num_q_heads = a.num_q_heads;
    p.num_kv_heads = a.kv.num_kv_heads;
    p.scale_log2 = scale_log2;
    p.tiles = nullptr;
    p.tiles_per_seq = (a.max_q_len + kRows - 1) / kRows;
    const int64_t blocks = static_cast<int64_t>(a.batch) * p.tiles_per_seq;
    if (blocks > INT_MAX) fail(KV_STATUS_UNSUPPORTED, "batch * query tiles = ", blocks, " exceeds 2^31 - 1 blocks");
    if (d == 64) prefill_tc::launch<64, true>(p, x, static_cast<int>(blocks), s->stream);
    else prefill_tc::launch<128, true>(p, x, static_cast<int>(blocks), s->stream);
    return;
  }
  PagedSimpleParams p;
  p.q = a.q;
  p.k = a.kv.k;
  p.v = a.kv.v;
  p.o = a.o;
  p.lse = a.lse;
  p.batch = a.batch;
  p.max_q_len = a.max_q_len;
  p.num_q_heads = a.num_q_heads;
  p.num_kv_heads = a.kv.num_kv_heads;
  p.scale_log2 = scale_log2;
  p.x = x;
  const int64_t items = static_cast<int64_t>(a.batch) * a.max_q_len * a.num_q_heads;
  const int64_t blocks = (items + kSimpleWarps - 1) / kSimpleWarps;
  if (blocks > INT_MAX) fail(KV_STATUS_UNSUPPORTED, "batch * max_q_len * num_q_heads = ", items, " is too many rows");
  if (a.dtype == KV_DTYPE_BF16) launch_simple<uint16_t>(p, d, static_cast<unsigned>(blocks), s->stream);
  else launch_simple<float>(p, d, static_cast<unsigned>(blocks), s->stream);
}

}  // namespace kv::cuda
