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
#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

// The block shape. Other shapes the code supports as they are (ptxas -v for sm_90, head_dim
// 128 / 64; every one without spills): 4 warps x 16 rows, 2 blocks/SM: 189 / 140 registers,
// 64-row tiles, 80 / 40 KB; 8 warps x 16 rows, 1 block/SM: 189 / 140 registers, 96 / 48 KB.
// (8 x 16 at 2 blocks/SM spills; so does 4 x 32 at 3 blocks/SM for head_dim 64.)
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMTiles = 2;                        // 16-row MMA tiles per warp
constexpr int kMinBlocksPerSM = 2;                // 255 registers at head_dim 128, 225 at 64
constexpr int kWarpRows = 16 * kMTiles;           // query rows per warp
constexpr int kTileRows = kWarps * kWarpRows;     // query rows per block
constexpr int kKeys = 64;                         // keys per K/V tile
static_assert(kTileRows % kKeys == 0, "the diagonal logic assumes key tiles divide query tiles");

template <int D>
struct PrefillShape {
  static constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static constexpr int kQElems = kTileRows * D;
  static constexpr int kKVElems = kKeys * D;
  static constexpr int kSmemBytes = (kQElems + 4 * kKVElems) * 2;  // Q, K[2], V[2] in bf16
  static_assert(kChunks % 8 == 0, "the swizzle permutes chunks within groups of 8");
  static_assert((kTileRows * kChunks) % kThreads == 0 && (kKeys * kChunks) % kThreads == 0, "whole fill passes");
};

// Element offset of (row, 16-byte chunk) in a [rows][D] bf16 tile: chunk c of row r is stored
// at chunk c ^ (r % 8), so the 8 rows one ldmatrix phase reads (same logical chunk) land in 8
// different bank groups.
template <int D>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte asynchronous copy global -> shared; src_valid = false writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool src_valid) {
  const int src_bytes = src_valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most n of this thread's most recent groups are pending.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a * b for one 16x8x16 tile: a row-major 16x16, b column-major 16x8, fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest even into bf16x2, lo in the low half (the lower column).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// 2^x (MUFU; <= 2 ulp; 2^-inf = 0; results below 2^-126 flush to 0).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <int D>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM) attention_prefill_kernel(const PrefillParams p) {
  using S = PrefillShape<D>;
  constexpr int C = S::kChunks;
  extern __shared__ __align__(128) uint16_t smem[];
  uint16_t* s_q = smem;                   // [kTileRows][D]
  uint16_t* s_k = s_q + S::kQElems;       // [2][kKeys][D]
  uint16_t* s_v = s_k + 2 * S::kKVElems;  // [2][kKeys][D]

  // ---- the tile
  int64_t q_row, kv_row0;
  int32_t q_count, q_pos0;
  if (p.tiles) {
    const PrefillTile t = p.tiles[blockIdx.x];
    q_row = t.q_row;
    q_count = t.q_count;
    q_pos0 = t.q_pos0;
    kv_row0 = t.kv_row0;
  } else {
    const int32_t seq = blockIdx.x / p.tiles_per_seq;
    const int32_t qt = p.tiles_per_seq - 1 - static_cast<int32_t>(blockIdx.x % p.tiles_per_seq);
    q_row = static_cast<int64_t>(seq) * p.q_len + qt * kTileRows;
    q_count = min(kTileRows, p.q_len - qt * kTileRows);
    q_pos0 = static_cast<int32_t>(p.kv_len - p.q_len) + qt * kTileRows;
    kv_row0 = static_cast<int64_t>(seq) * p.kv_len;
  }
  const int head = blockIdx.y;
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int32_t n_kv = q_pos0 + q_count;  // the tile reads positions [0, n_kv)
  const int32_t n_tiles = (n_kv + kKeys - 1) / kKeys;

  const uint16_t* q_base = p.q + q_row * p.q_row_stride + static_cast<int64_t>(head) * D;
  const uint16_t* k_base = p.k + kv_row0 * p.kv_row_stride + static_cast<int64_t>(kv_head) * D;
  const uint16_t* v_base = p.v + kv_row0 * p.kv_row_stride + static_cast<int64_t>(kv_head) * D;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int fill_chunk = tid % C;  // the 16-byte chunk this thread fills in every row it fills
  const int fill_row = tid / C;
  constexpr int kFillRowStep = kThreads / C;

  // ---- fills (each thread issues whole passes; rows past the data are zero-filled)
  auto fill_q = [&] {
#pragma unroll
    for (int it = 0; it < kTileRows / kFillRowStep; ++it) {
      const int r = fill_row + it * kFillRowStep;
      const bool ok = r < q_count;
      const uint16_t* src = ok ? q_base + r * p.q_row_stride + fill_chunk * 8 : q_base;
      cp_async16(smem_address(s_q + swizzle<D>(r, fill_chunk)), src, ok);
    }
  };
  auto fill_kv = [&](const uint16_t* base, uint16_t* dst, int32_t tile) {
#pragma unroll
    for (int it = 0; it < kKeys / kFillRowStep; ++it) {
      const int r = fill_row + it * kFillRowStep;
      const int32_t j = tile * kKeys + r;
      const bool ok = j < n_kv;
      const uint16_t* src = ok ? base + j * p.kv_row_stride + fill_chunk * 8 : base;
      cp_async16(smem_address(dst + swizzle<D>(r, fill_chunk)), src, ok);
    }
  };

  // ---- per-thread rows: the thread holds rows (lane / 4) and (lane / 4 + 8) of each MMA tile
  const int warp_row0 = warp * kWarpRows;
  const bool warp_active = warp_row0 < q_count;  // a warp of padding rows only does no math
  // Row r may see keys [0, limit]; padding rows (r >= q_count) are clamped to the loaded keys.
  int32_t limit[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) limit[mt][hf] = min(q_pos0 + warp_row0 + mt * 16 + hf * 8 + (lane >> 2), n_kv - 1);
  const int32_t warp_min_limit = min(q_pos0 + warp_row0, n_kv - 1);
  const int32_t warp_max_limit = min(q_pos0 + warp_row0 + kWarpRows - 1, n_kv - 1);

  float o_acc[kMTiles][D / 8][4];
  float m_run[kMTiles][2], l_run[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
      for (int c = 0; c < 4; ++c) o_acc[mt][dn][c] = 0.f;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      m_run[mt][hf] = kNegInf;
      l_run[mt][hf] = 0.f;
    }
  }
  const float scale_log2 = p.scale_log2;

  // Groups, in commit order: {Q, K0}, {V0}, then per tile t: {K[t+1]}, {V[t+1]} (empty past the end).
  fill_q();
  fill_kv(k_base, s_k, 0);
  cp_async_commit();
  fill_kv(v_base, s_v, 0);
  cp_async_commit();

  // ldmatrix lane addressing (see the fragment layouts of mma.m16n8k16):
  //  A (Q, 16x16 at rows R.., dims 16kk..): lane supplies row R + lane % 16, chunk 2kk + lane / 16.
  //  B (K, keys 16np.. x dims 16kk..): key 16np + lane % 8 + 8 (lane / 16), chunk 2kk + (lane / 8) % 2
  //    -> regs {b0, b1} of key block 2np and {b0, b1} of key block 2np + 1.
  //  B (V, trans, keys 16kk.. x dims 16dp..): key 16kk + lane % 8 + 8 ((lane / 8) % 2), chunk 2dp + lane / 16
  //    -> regs {b0, b1} of dim block 2dp and {b0, b1} of dim block 2dp + 1.
  const int a_row = lane & 15, a_chunk = lane >> 4;
  const int bk_row = (lane & 7) + ((lane >> 4) << 3), bk_chunk = (lane >> 3) & 1;
  const int bv_row = (lane & 7) + (((lane >> 3) & 1) << 3), bv_chunk = lane >> 4;

  for (int32_t t = 0; t < n_tiles; ++t) {
    const int stage = t & 1;
    const uint16_t* s_k_t = s_k + stage * S::kKVElems;
    const uint16_t* s_v_t = s_v + stage * S::kKVElems;

    cp_async_wait<1>();  // K[t] (and Q) landed; V[t] may still be in flight
    __syncthreads();     // ... for every thread; and every warp is done with K[t-1]'s buffer
    if (t + 1 < n_tiles) fill_kv(k_base, s_k + (stage ^ 1) * S::kKVElems, t + 1);
    cp_async_commit();

    const int32_t key0 = t * kKeys;
    const bool active = warp_active && key0 <= warp_max_limit;  // else every key is masked for this warp
    float s[kMTiles][kKeys / 8][4];
    if (active) {
      // ---- S = Q K^T
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; ++nt)
#pragma unroll
          for (int c = 0; c < 4; ++c) s[mt][nt][c] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[kMTiles][4];
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt)
          ldmatrix_x4(smem_address(s_q + swizzle<D>(warp_row0 + mt * 16 + a_row, 2 * kk + a_chunk)), a[mt]);
#pragma unroll
        for (int np = 0; np < kKeys / 16; ++np) {
          uint32_t b[4];
          ldmatrix_x4(smem_address(s_k_t + swizzle<D>(np * 16 + bk_row, 2 * kk + bk_chunk)), b);
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            mma_bf16(s[mt][2 * np], a[mt], b[0], b[1]);
            mma_bf16(s[mt][2 * np + 1], a[mt], b[2], b[3]);
          }
        }
      }

      // ---- causal mask, only where some key of the tile lies past some row of the warp
      if (key0 + kKeys - 1 > warp_min_limit) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
          for (int nt = 0; nt < kKeys / 8; ++nt)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const int32_t key = key0 + nt * 8 + 2 * (lane & 3) + (c & 1);
              if (key > limit[mt][c >> 1]) s[mt][nt][c] = kNegInf;
            }
      }

      // ---- online softmax (base 2); a row's four threads (one quad) share its max
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          float mx = kNegInf;
#pragma unroll
          for (int nt = 0; nt < kKeys / 8; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * hf], s[mt][nt][2 * hf + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float m_new = fmaxf(m_run[mt][hf], mx * scale_log2);
          const float m_use = m_new == kNegInf ? 0.f : m_new;  // no key yet: keep 2^(-inf - 0) = 0
          const float factor = exp2_approx(m_run[mt][hf] - m_use);
          m_run[mt][hf] = m_new;
#pragma unroll
          for (int dn = 0; dn < D / 8; ++dn) {
            o_acc[mt][dn][2 * hf] *= factor;
            o_acc[mt][dn][2 * hf + 1] *= factor;
          }
          float sum = 0.f;
#pragma unroll
          for (int nt = 0; nt < kKeys / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float pe = exp2_approx(fmaf(s[mt][nt][2 * hf + e], scale_log2, -m_use));
              s[mt][nt][2 * hf + e] = pe;
              sum += pe;
            }
          l_run[mt][hf] = l_run[mt][hf] * factor + sum;  // this thread's share; the quad sums at the end
        }
    }

    cp_async_wait<1>();  // V[t] landed; K[t+1] may still be in flight
    __syncthreads();     // ... for every thread; and every warp is done with V[t-1]'s buffer
    if (t + 1 < n_tiles) fill_kv(v_base, s_v + (stage ^ 1) * S::kKVElems, t + 1);
    cp_async_commit();

    if (active) {
      // ---- O += P V, P from the score registers (the C layout of S is the A layout of P)
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        uint32_t a[kMTiles][4];
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          a[mt][0] = pack_bf16x2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          a[mt][1] = pack_bf16x2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          a[mt][2] = pack_bf16x2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          a[mt][3] = pack_bf16x2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t b[4];
          ldmatrix_x4_trans(smem_address(s_v_t + swizzle<D>(kk * 16 + bv_row, 2 * dp + bv_chunk)), b);
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            mma_bf16(o_acc[mt][2 * dp], a[mt], b[0], b[1]);
            mma_bf16(o_acc[mt][2 * dp + 1], a[mt], b[2], b[3]);
          }
        }
      }
    }
  }
  cp_async_wait<0>();  // only empty groups remain; leave nothing in flight

  if (!warp_active) return;  // no barrier follows: the epilogue touches only the warp's own rows

  // ---- epilogue: normalize, stage the warp's rows in its own Q rows of shared memory, store
  __syncwarp();
  float lse_out[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float l = l_run[mt][hf];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      lse_out[mt][hf] = l > 0.f ? (m_run[mt][hf] + log2f(l)) * kLn2 : kNegInf;
      const int r = warp_row0 + mt * 16 + hf * 8 + (lane >> 2);
#pragma unroll
      for (int dn = 0; dn < D / 8; ++dn) {
        const uint32_t packed = pack_bf16x2(o_acc[mt][dn][2 * hf] * inv, o_acc[mt][dn][2 * hf + 1] * inv);
        *reinterpret_cast<uint32_t*>(s_q + swizzle<D>(r, dn) + 2 * (lane & 3)) = packed;
      }
    }
  __syncwarp();
  uint16_t* o_base = p.o + q_row * p.o_row_stride + static_cast<int64_t>(head) * D;
#pragma unroll
  for (int it = 0; it < kWarpRows * C / 32; ++it) {
    const int i = lane + it * 32;
    const int r = warp_row0 + i / C, c = i % C;
    if (r < q_count)
      *reinterpret_cast<uint4*>(o_base + r * p.o_row_stride + c * 8) =
          *reinterpret_cast<const uint4*>(s_q + swizzle<D>(r, c));
  }
  if (p.lse && (lane & 3) == 0) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int r = warp_row0 + mt * 16 + hf * 8 + (lane >> 2);
        if (r < q_count) p.lse[(q_row + r) * p.lse_row_stride + head] = lse_out[mt][hf];
      }
  }
}

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

template <int D>
void launch_tensor_core(const PrefillParams& p, int num_tiles, cudaStream_t stream) {
  const int smem = PrefillShape<D>::kSmemBytes;
  KV_CUDA_CHECK(cudaFuncSetAttribute(attention_prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  KV_CUDA_CHECK(cudaFuncSetAttribute(attention_prefill_kernel<D>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                     cudaSharedmemCarveoutMaxShared));
  dim3 grid(static_cast<unsigned>(num_tiles), static_cast<unsigned>(p.num_q_heads));
  attention_prefill_kernel<D><<<grid, kThreads, smem, stream>>>(p);
  KV_CUDA_CHECK_LAUNCH();
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
  if (head_dim == 64) launch_tensor_core<64>(p, num_tiles, stream);
  else launch_tensor_core<128>(p, num_tiles, stream);
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
