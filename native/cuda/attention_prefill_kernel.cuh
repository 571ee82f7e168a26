// The FlashAttention-2 style tensor-core prefill kernel, shared by the contiguous op
// (attention_prefill.cu: kv_attention_prefill_async and the model runtime) and the paged op
// (paged_prefill.cu: kv_paged_prefill_async). Only the tile lookup and the address of a K/V
// row differ; they are a compile-time policy (kPaged), so the contiguous instantiation is the
// same code as before the paged one existed. The design notes are in attention_prefill.cu.
//
// Paged policy: block x of the grid (batch * tiles_per_seq, num_q_heads) is sequence
// x / tiles_per_seq, query tile tiles_per_seq - 1 - x % tiles_per_seq of that sequence's rows
// [q_indptr[b], q_indptr[b+1]) (longest tile first); a tile past the sequence's q_len exits.
// The K/V rows of a 64-key tile are found through the page table: threads 0..63 each own one
// key row, load its page id two tiles ahead (the load's latency hides behind the QK^T of the
// current tile), validate it and publish the row's element offset in a small shared ring
// (s_off[2][64]); the cp.async fills read the offsets from there. -1 marks a row past the
// keys or behind a bad page id: it is zero-filled, never read.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/op_args.h"
#include "cuda/attention_prefill.cuh"
#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {

// The paged policy's extra parameters (unused by the contiguous instantiation). K and V pool
// bases travel in PrefillParams::k / ::v; q, o and lse rows are tokens of the varlen batch.
struct PagedPrefillExtra {
  const int32_t* q_indptr = nullptr;  // [batch + 1]
  const int32_t* kv_lens = nullptr;   // [batch]
  const int32_t* pages = nullptr;     // page table
  int64_t table_seq_stride = 0;
  int64_t table_head_stride = 0;
  int64_t page_stride = 0;            // elements, as kv_paged_kv
  int64_t head_stride = 0;
  int64_t token_stride = 0;
  int64_t num_pages = 0;
  int32_t page_tokens = 0;
  int32_t max_q_len = 0;
  int32_t max_kv_len = 0;
  int32_t unused = 0;
  DeviceErrorRecord* error = nullptr;  // the stream's record
};

namespace prefill_tc {

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
  static constexpr int kSmemBytesPaged = kSmemBytes + 2 * kKeys * 8;  // + the paged row offsets
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

// kPaged = false: the contiguous policy (tile list or uniform batch, attention_prefill.cuh).
// kPaged = true: the paged policy (see the top of this file); x holds its parameters.
template <int D, bool kPaged>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    attention_prefill_kernel(const PrefillParams p, const PagedPrefillExtra x) {
  using S = PrefillShape<D>;
  constexpr int C = S::kChunks;
  extern __shared__ __align__(128) uint16_t smem[];
  uint16_t* s_q = smem;                   // [kTileRows][D]
  uint16_t* s_k = s_q + S::kQElems;       // [2][kKeys][D]
  uint16_t* s_v = s_k + 2 * S::kKVElems;  // [2][kKeys][D]
  // paged: [2][kKeys] element offsets of the K/V rows of tiles u (slot u & 1); -1: zero-fill
  int64_t* s_off = reinterpret_cast<int64_t*>(s_v + 2 * S::kKVElems);

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  // ---- the tile
  int64_t q_row, kv_row0 = 0;
  int32_t q_count, q_pos0;
  int32_t seq = 0;
  if constexpr (kPaged) {
    seq = blockIdx.x / p.tiles_per_seq;
    const int32_t qt = p.tiles_per_seq - 1 - static_cast<int32_t>(blockIdx.x % p.tiles_per_seq);
    const int32_t q_begin = x.q_indptr[seq];
    const int32_t q_len = x.q_indptr[seq + 1] - q_begin;
    const int32_t kv_len = x.kv_lens[seq];
    // Validated by every block of the sequence (the first error wins); a bad sequence is skipped.
    if ((seq == 0 && q_begin != 0) || q_len < 0 || q_len > x.max_q_len) {
      if (tid == 0)
        record_device_error(x.error, kDeviceErrorQIndptr, seq + (seq == 0 && q_begin != 0 ? 0 : 1),
                            seq == 0 && q_begin != 0 ? q_begin : q_len, x.max_q_len);
      return;
    }
    if (kv_len < q_len || kv_len > x.max_kv_len) {
      if (tid == 0) record_device_error(x.error, kDeviceErrorKvLenOutOfRange, seq, kv_len, x.max_kv_len);
      return;
    }
    if (qt * kTileRows >= q_len) return;  // this sequence has fewer query tiles than the longest
    q_row = static_cast<int64_t>(q_begin) + qt * kTileRows;
    q_count = min(kTileRows, q_len - qt * kTileRows);
    q_pos0 = kv_len - q_len + qt * kTileRows;
  } else if (p.tiles) {
    const PrefillTile t = p.tiles[blockIdx.x];
    q_row = t.q_row;
    q_count = t.q_count;
    q_pos0 = t.q_pos0;
    kv_row0 = t.kv_row0;
  } else {
    const int32_t sq = blockIdx.x / p.tiles_per_seq;
    const int32_t qt = p.tiles_per_seq - 1 - static_cast<int32_t>(blockIdx.x % p.tiles_per_seq);
    q_row = static_cast<int64_t>(sq) * p.q_len + qt * kTileRows;
    q_count = min(kTileRows, p.q_len - qt * kTileRows);
    q_pos0 = static_cast<int32_t>(p.kv_len - p.q_len) + qt * kTileRows;
    kv_row0 = static_cast<int64_t>(sq) * p.kv_len;
  }
  const int head = blockIdx.y;
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int32_t n_kv = q_pos0 + q_count;  // the tile reads positions [0, n_kv)
  const int32_t n_tiles = (n_kv + kKeys - 1) / kKeys;

  const uint16_t* q_base = p.q + q_row * p.q_row_stride + static_cast<int64_t>(head) * D;
  // contiguous: row j of the sequence's KV head at base + j * kv_row_stride;
  // paged: row (page, token) of the KV head at base + page * page_stride + token * token_stride
  const uint16_t* k_base = kPaged ? p.k + kv_head * x.head_stride
                                  : p.k + kv_row0 * p.kv_row_stride + static_cast<int64_t>(kv_head) * D;
  const uint16_t* v_base = kPaged ? p.v + kv_head * x.head_stride
                                  : p.v + kv_row0 * p.kv_row_stride + static_cast<int64_t>(kv_head) * D;

  const int fill_chunk = tid % C;  // the 16-byte chunk this thread fills in every row it fills
  const int fill_row = tid / C;
  constexpr int kFillRowStep = kThreads / C;

  // ---- paged: page-table prefetch. Thread tid < kKeys owns key row tid of every tile; only
  // the loaded page id stays live across the QK^T between load and store (registers are tight).
  const int32_t* table = kPaged ? x.pages + seq * x.table_seq_stride + kv_head * x.table_head_stride : nullptr;
  int32_t pf_page = 0;
  // Issues the page-id load of key row tid of tile u (non-blocking until table_store uses it).
  auto table_load = [&](int32_t u) {
    if constexpr (kPaged) {
      const int32_t j = u * kKeys + tid;
      if (tid < kKeys && j < n_kv) pf_page = table[j / x.page_tokens];
    }
  };
  // Publishes the row's offset (or -1) in slot u & 1 of s_off; visible after the next barrier.
  auto table_store = [&](int32_t u) {
    if constexpr (kPaged) {
      if (tid < kKeys) {
        const int32_t j = u * kKeys + tid;
        int64_t off = -1;
        if (j < n_kv) {
          const int32_t logical = j / x.page_tokens;
          if (pf_page >= 0 && pf_page < x.num_pages) {
            off = pf_page * x.page_stride + (j - logical * x.page_tokens) * x.token_stride;
          } else {
            record_device_error(x.error, kDeviceErrorPageIdOutOfRange, (table - x.pages) + logical, pf_page,
                                x.num_pages);
          }
        }
        s_off[(u & 1) * kKeys + tid] = off;
      }
    }
  };

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
      if constexpr (kPaged) {
        const int64_t off = s_off[(tile & 1) * kKeys + r];
        const bool ok = off >= 0;
        const uint16_t* src = ok ? base + off + fill_chunk * 8 : base;
        cp_async16(smem_address(dst + swizzle<D>(r, fill_chunk)), src, ok);
      } else {
        const int32_t j = tile * kKeys + r;
        const bool ok = j < n_kv;
        const uint16_t* src = ok ? base + j * p.kv_row_stride + fill_chunk * 8 : base;
        cp_async16(smem_address(dst + swizzle<D>(r, fill_chunk)), src, ok);
      }
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
  if constexpr (kPaged) {  // offsets of tiles 0 and 1, then a barrier before the first fills read them
    table_load(0);
    table_store(0);
    table_load(1);
    table_store(1);
    __syncthreads();
  }
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
    // paged: the page ids of tile t + 2, stored into slot t & 1 below (tile t's offsets were last
    // read by the fills of iteration t - 1, which every thread finished before the barrier above)
    if (t + 2 < n_tiles) table_load(t + 2);

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

    if (t + 2 < n_tiles) table_store(t + 2);  // read by the fills of iteration t + 1, after the barriers
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


// Launches the kernel over a grid (num_blocks, num_q_heads) on a stream; the caller validated
// the parameters. Throws kv::Error on a failed launch.
template <int D, bool kPaged>
void launch(const PrefillParams& p, const PagedPrefillExtra& x, int num_blocks, cudaStream_t stream) {
  const int smem = kPaged ? PrefillShape<D>::kSmemBytesPaged : PrefillShape<D>::kSmemBytes;
  KV_CUDA_CHECK(
      cudaFuncSetAttribute(attention_prefill_kernel<D, kPaged>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  KV_CUDA_CHECK(cudaFuncSetAttribute(attention_prefill_kernel<D, kPaged>,
                                     cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  dim3 grid(static_cast<unsigned>(num_blocks), static_cast<unsigned>(p.num_q_heads));
  attention_prefill_kernel<D, kPaged><<<grid, kThreads, smem, stream>>>(p, x);
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace prefill_tc
}  // namespace kv::cuda
