// Causal prefill attention on CUDA: a FlashAttention-2 style tensor-core kernel for bf16 with
// head_dim 64 and 128 (the interface is in attention_prefill.cuh), and a simple fp32 kernel
// for everything else the ABI op accepts (f32, and head_dim 256).
//
// Tensor-core kernel. One block of 4 warps computes a tile of 128 query rows of one query
// head; each warp owns 32 rows (two 16-row MMA tiles). Keys are streamed in tiles of 64
// through shared memory, K and V double-buffered and filled with cp.async (zero-filled past
// the last key), rows XOR-swizzled in 16-byte chunks so that ldmatrix and the fills are free
// of bank conflicts. Per key tile:
//   wait K[t]; barrier; prefetch K[t+1]
//   S = Q K^T        (mma.m16n8k16 bf16 -> fp32; Q and K fragments by ldmatrix from shared)
//   causal mask      (only on tiles that cross the diagonal of the warp's rows)
//   online softmax   (base 2, scores scaled by sm_scale * log2(e) inside the exp2 argument;
//                     row sums of the fp32 probabilities, reduced across the quad at the end)
//   wait V[t]; barrier; prefetch V[t+1]
//   O += P V         (P rounded to bf16 in registers, reused as the A operand; V by
//                     ldmatrix.trans)
// Key tiles above the diagonal are never visited; a warp skips a tile wholly above its own
// rows. The natural-log lse is formed only when written. The output goes through shared
// memory (the warp's own Q rows) so that global stores are 16-byte and coalesced.
//
// Why 32 rows per warp (not 16): every warp reads the whole K and V tile from shared memory
// through ldmatrix, so shared-memory traffic per MMA halves with twice the rows. At 16 rows
// per warp a Hopper SM would move ~2 KB of shared memory per 8 MMAs and be bound by shared
// bandwidth (128 B/clk) below the mma.sync rate; at 32 it is not. The price is registers
// (~128 fp32 accumulators of O for head_dim 128), hence 4 warps and 2 blocks per SM (96 KB of
// shared memory each at head_dim 128). Tile shape and these figures: docs/native.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>

#include "cuda/attention_prefill.cuh"
#include "cuda/attention_prefill_kernel.cuh"
#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

using prefill_tc::kTileRows;

// ----------------------------------------------------------------------------- simple kernel

// One warp per (query row, head), lanes splitting the channels, keys one at a time with an
// online softmax in base 2. For f32 and head_dim 256: correct, not fast.
struct SimpleParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  float* lse;
  int64_t rows;  // batch * q_len * num_q_heads
  int32_t q_len, num_q_heads, num_kv_heads;
  int64_t kv_len;
  float scale_log2;
};

constexpr int kSimpleWarps = 4;

template <typename T, int D>
__global__ void __launch_bounds__(kSimpleWarps * 32) attention_prefill_simple_kernel(const SimpleParams p) {
  constexpr int E = D / 32;
  const int lane = threadIdx.x & 31;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kSimpleWarps + (threadIdx.x >> 5);
  if (item >= p.rows) return;
  const int32_t head = static_cast<int32_t>(item % p.num_q_heads);
  const int64_t token = item / p.num_q_heads;  // b * q_len + i
  const int32_t i = static_cast<int32_t>(token % p.q_len);
  const int64_t b = token / p.q_len;
  const int32_t kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int64_t pos = p.kv_len - p.q_len + i;

  float q[E], acc[E];
  const T* qp = static_cast<const T*>(p.q) + item * D + lane * E;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    q[e] = load_scalar(qp + e) * p.scale_log2;
    acc[e] = 0.f;
  }
  const int64_t row_stride = static_cast<int64_t>(p.num_kv_heads) * D;
  const int64_t base = b * p.kv_len * row_stride + static_cast<int64_t>(kv_head) * D + lane * E;
  const T* kp = static_cast<const T*>(p.k) + base;
  const T* vp = static_cast<const T*>(p.v) + base;
  SoftmaxState st;
  for (int64_t j = 0; j <= pos; ++j) {
    float dot = 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) dot = fmaf(q[e], load_scalar(kp + j * row_stride + e), dot);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
    if (dot > st.m) {
      const float factor = st.rescale_to(dot);
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] *= factor;
    }
    const float pj = exp2f(dot - st.m);
    st.l += pj;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = fmaf(pj, load_scalar(vp + j * row_stride + e), acc[e]);
  }
  const float inv = st.l > 0.f ? 1.f / st.l : 0.f;
  T* op = static_cast<T*>(p.o) + item * D + lane * E;
#pragma unroll
  for (int e = 0; e < E; ++e) store_scalar(op + e, acc[e] * inv);
  if (p.lse && lane == 0) p.lse[item] = st.lse();
}

template <typename T, int D>
void launch_simple(const SimpleParams& p, unsigned blocks, cudaStream_t stream) {
  attention_prefill_simple_kernel<T, D><<<blocks, kSimpleWarps * 32, 0, stream>>>(p);
  KV_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_simple_t(const SimpleParams& p, int d, unsigned blocks, cudaStream_t stream) {
  switch (d) {
    case 64: launch_simple<T, 64>(p, blocks, stream); break;
    case 128: launch_simple<T, 128>(p, blocks, stream); break;
    default: launch_simple<T, 256>(p, blocks, stream); break;
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

int prefill_tile_rows(int head_dim) {
  (void)head_dim;  // the same tile for 64 and 128
  return kTileRows;
}

void launch_attention_prefill(const PrefillParams& p, int head_dim, int num_tiles, cudaStream_t stream) {
  if (head_dim != 64 && head_dim != 128)
    fail(KV_STATUS_UNSUPPORTED, "prefill attention on tensor cores: head_dim=", head_dim, " is not 64 or 128");
  KV_REQUIRE(num_tiles >= 0, "num_tiles=", num_tiles, " must be >= 0");
  KV_REQUIRE(p.num_kv_heads > 0 && p.num_q_heads > 0 && p.num_q_heads % p.num_kv_heads == 0, "num_q_heads=",
             p.num_q_heads, " must be a positive multiple of num_kv_heads=", p.num_kv_heads);
  if (p.num_q_heads > 65535) fail(KV_STATUS_UNSUPPORTED, "num_q_heads=", p.num_q_heads, " exceeds 65535 blocks");
  KV_REQUIRE(aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && aligned16(p.o),
             "q, k, v and o must be 16-byte aligned for prefill attention on CUDA (kv_buffer_init memory is; check "
             "sub-buffer offsets)");
  KV_REQUIRE(p.q_row_stride % 8 == 0 && p.kv_row_stride % 8 == 0 && p.o_row_stride % 8 == 0,
             "prefill attention row strides must be multiples of 8 elements (q ", p.q_row_stride, ", kv ",
             p.kv_row_stride, ", o ", p.o_row_stride, ")");
  KV_REQUIRE(p.tiles || (p.q_len >= 1 && p.kv_len >= p.q_len && p.kv_len <= INT_MAX &&
                         p.tiles_per_seq == (p.q_len + kTileRows - 1) / kTileRows),
             "uniform prefill needs 1 <= q_len <= kv_len < 2^31 and tiles_per_seq = ceil(q_len / ", kTileRows, ")");
  if (num_tiles == 0) return;
  if (head_dim == 64) prefill_tc::launch<64, false>(p, PagedPrefillExtra{}, num_tiles, stream);
  else prefill_tc::launch<128, false>(p, PagedPrefillExtra{}, num_tiles, stream);
}

void attention_prefill(Stream* s, const AttentionPrefillArgs& a) {
  DeviceGuard guard(s->device);
  if (a.kv_len > INT_MAX) fail(KV_STATUS_UNSUPPORTED, "kv_len=", a.kv_len, " exceeds 2^31 - 1 on CUDA");
  if (a.dtype == KV_DTYPE_BF16 && (a.head_dim == 64 || a.head_dim == 128)) {
    PrefillParams p;
    p.q = static_cast<const uint16_t*>(a.q);
    p.k = static_cast<const uint16_t*>(a.k);
    p.v = static_cast<const uint16_t*>(a.v);
    p.o = static_cast<uint16_t*>(a.o);
    p.lse = a.lse;
    p.q_row_stride = p.o_row_stride = static_cast<int64_t>(a.num_q_heads) * a.head_dim;
    p.kv_row_stride = static_cast<int64_t>(a.num_kv_heads) * a.head_dim;
    p.lse_row_stride = a.num_q_heads;
    p.num_q_heads = a.num_q_heads;
    p.num_kv_heads = a.num_kv_heads;
    p.scale_log2 = a.sm_scale * kLog2e;
    p.tiles = nullptr;
    p.q_len = a.q_len;
    p.kv_len = a.kv_len;
    p.tiles_per_seq = (a.q_len + kTileRows - 1) / kTileRows;
    const int64_t num_tiles = static_cast<int64_t>(a.batch) * p.tiles_per_seq;
    if (num_tiles > INT_MAX) fail(KV_STATUS_UNSUPPORTED, "batch * query tiles = ", num_tiles, " exceeds 2^31 - 1 blocks");
    launch_attention_prefill(p, a.head_dim, static_cast<int>(num_tiles), s->stream);
    return;
  }
  SimpleParams p;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.o = a.o;
  p.lse = a.lse;
  p.rows = static_cast<int64_t>(a.batch) * a.q_len * a.num_q_heads;
  p.q_len = a.q_len;
  p.num_q_heads = a.num_q_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.kv_len = a.kv_len;
  p.scale_log2 = a.sm_scale * kLog2e;
  const int64_t blocks = (p.rows + kSimpleWarps - 1) / kSimpleWarps;
  if (blocks > INT_MAX) fail(KV_STATUS_UNSUPPORTED, "batch * q_len * num_q_heads = ", p.rows, " is too many rows");
  if (a.dtype == KV_DTYPE_BF16) launch_simple_t<uint16_t>(p, a.head_dim, static_cast<unsigned>(blocks), s->stream);
  else launch_simple_t<float>(p, a.head_dim, static_cast<unsigned>(blocks), s->stream);
}

}  // namespace kv::cuda
