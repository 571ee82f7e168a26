// Paged KV append and paged decode (split-KV, GQA-aware, sparse with a page selection).
//
// Append: one thread per 16-byte vector of a (token, KV head) row, consecutive threads on
// consecutive vectors of a row (a bf16 row of 128 channels is 16 vectors, half a warp): K and
// V are read and written with coalesced 16-byte accesses. Slots are range-checked on the
// device; a bad slot is recorded in the stream's error record and its row is not written.
//
// Decode has two kernels; paged_decode() picks one per call (KVASIR_PAGED_DECODE_KERNEL
// overrides it for benchmarks, see kernel_choice). Both share the page-list staging, the
// split-KV plan and its epilogue: grid x = splits of each page list, y = (sequence, KV head,
// tile of query heads of the GQA group), so a block reads its split's K/V bytes once for all
// heads of its tile. A block walks its split's page list in chunks: a chunk's page-table (and
// selection) entries are loaded with coalesced loads, range-checked (bad ones recorded in the
// stream's error record, the page skipped) and turned into row offsets in shared memory once,
// so no copy waits on a page-table load. K and V stream through shared memory by cp.async,
// zero-filled and masked past a partial page or a skipped page. With several splits the
// blocks write normalized fp32 partial outputs and their lse to the workspace; the last split
// block of each (sequence, KV head, group tile) to finish (an arrival counter of the stream,
// see merge_splits_if_last) merges them with the state merge (attention_state.cuh) and writes
// o and lse, so a decode is one launch (a separate merge launch cost ~5 us of launch gap and
// ramp, a tenth of batch 1 x 32K). Splits past a sequence's page count write the empty
// state. The number of splits comes from make_plan: the fewest whose blocks fill the GPU's
// resident-block slots, in whole K/V tiles (batch 1 x 32K with 8 KV heads: 32 splits of 16
// tiles on 132 SMs; see make_plan for the expected time).
//
// Tensor-core kernel (bf16, head_dim 64 and 128: everything the model runs; FlashInfer's
// decode approach). The GQA group is packed into the rows of mma.m16n8k16: a block's 16 rows
// are up to 16 query heads of one KV head (row r -> query head kv_head * group + r; rows past
// the group are zero padding, so with the usual group of 4 three quarters of the MMA work is
// wasted, which costs nothing that matters: the kernel is bound by memory, and the CUDA-core
// kernel was bound by its FMAs). Q lives in registers as A fragments for the whole block.
// K/V tiles are 64 keys (the prefill kernel's tile, swizzled the same way so ldmatrix reads
// are conflict-free; 16 KiB of K and of V at D = 128), 3 stages in flight at D = 128 (2
// blocks per SM: 128 KiB of loads outstanding per SM), 4 at D = 64 (3 blocks per SM). Each
// 16-byte copy is one cp.async whose source row offset was computed once per tile by one
// thread (the page-list position needs a division by the page size).
// The four warps split each tile's keys, 16 each, rather than its columns: each warp then
// runs QK^T (D/16 x 2 MMAs), its own online softmax and PV (D/8 MMAs) on its keys alone and
// keeps its own (m, l, o) state, so the only block-wide synchronization per tile is the one
// barrier of the copy pipeline, no warp reads another's K/V fragments, and P never goes
// through shared memory (the C layout of S is the A layout of P). Splitting the columns
// instead would need every warp's scores or probabilities of all 64 keys (an exchange and a
// barrier per tile). The four states are merged once at the end (attention_state.cuh).
// Precision: P is multiplied by V as bf16 hi + bf16 lo parts (two MMAs; P to about 16 bits),
// so the result keeps the fp32-softmax error bound of the CUDA-core kernel (the tests hold
// both to the same bound); at 3 blocks x 4 warps the extra D/8 MMAs per 16 keys are far from
// the tensor cores' rate at memory speed. The variant with P rounded to bf16 once (as the
// prefill kernel does; outside the decode error bound, so only a benchmark may ask for it:
// KVASIR_PAGED_DECODE_KERNEL=tensor-core-bf16p) measures what the second MMA costs.
//
// CUDA-core kernel (fp32, head_dim 256, and every call with KVASIR_PAGED_DECODE_KERNEL=
// cuda-core): tiles of 8 KiB of K and 8 KiB of V, four in flight (48 KiB per block). Compute
// follows the dense decode kernel (attention_decode.cu): groups of L lanes share a token
// (L * 8 = head_dim, at most 32 lanes), each lane holding 8 channels of q, k, v and the
// accumulators of all G heads of its tile (at most 8); scores are reduced with shuffles;
// each lane group keeps an online softmax (base 2); the block's lane groups are merged in
// shared memory (attention_state.cuh).
#include "cuda/paged_decode.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "cuda/attention_prefill_kernel.cuh"
#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kPageChunk = 512;           // page-list entries staged in shared memory at a time
constexpr int64_t kMinTokensPerSplit = 256;
constexpr int kAppendThreads = 256;

// ----------------------------------------------------------------------------- append

__global__ void __launch_bounds__(kAppendThreads) paged_append_kernel(PagedAppendArgs a, int32_t vecs_per_row,
                                                                      int32_t esize, DeviceErrorRecord* err) {
  const int32_t H = a.kv.num_kv_heads, P = a.kv.page_tokens;
  const int64_t total = a.num_tokens * H * vecs_per_row;
  const int64_t capacity = a.kv.num_pages * P;
  const int64_t row_bytes = static_cast<int64_t>(vecs_per_row) * 16;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kAppendThreads) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * kAppendThreads) {
    const int64_t row = i / vecs_per_row;
    const int32_t vec = static_cast<int32_t>(i - row * vecs_per_row);
    const int64_t token = row / H;
    const int32_t h = static_cast<int32_t>(row - token * H);
    const int64_t entry = a.slots_head_stride == 0 ? token : token * a.slots_head_stride + h;
    const int64_t slot = a.slots[entry];
    if (slot < 0) continue;  // skipped row
    if (slot >= capacity) {
      if (vec == 0) record_device_error(err, kDeviceErrorSlotOutOfRange, entry, slot, capacity);
      continue;
    }
    const int64_t page = slot / P;
    const int32_t t = static_cast<int32_t>(slot - page * P);
    const int64_t dst = a.kv.offset(page, h, t) * esize + vec * 16;
    const int64_t src = row * row_bytes + vec * 16;
    const uint4 kx = *reinterpret_cast<const uint4*>(static_cast<const char*>(a.k) + src);
    const uint4 vx = *reinterpret_cast<const uint4*>(static_cast<const char*>(a.v) + src);
    *reinterpret_cast<uint4*>(static_cast<char*>(a.kv.k) + dst) = kx;
    *reinterpret_cast<uint4*>(static_cast<char*>(a.kv.v) + dst) = vx;
  }
}

// ----------------------------------------------------------------------------- decode

struct PagedDecodeParams {
  PagedDecodeArgs a;
  float* part_o;    // [splits][rows][D] fp32 partial states (several splits)
  float* part_lse;  // [splits][rows]
  uint32_t* arrivals;  // the stream's arrival counters, one per block row (grid y); zero on entry
  int32_t group, group_tiles, splits, pages_per_split;
  int64_t rows;
  float scale_log2;  // sm_scale * log2(e): scores come out in base 2
  DeviceErrorRecord* err;
};

// Validates sequence b's kv_len and (with a selection) its page count, recording bad ones in
// the stream's error record (a bad sequence attends nothing): *len is its token count, *count
// the length of its page list (logical pages, or selection entries).
__device__ __forceinline__ void sequence_pages(const PagedDecodeParams& p, int32_t b, int64_t list_id, int32_t* len_out,
                                               int32_t* count_out) {
  const PagedDecodeArgs& a = p.a;
  const int32_t P = a.kv.page_tokens;
  int32_t len = a.table.kv_lens[b];
  int32_t count = 0;
  if (len < 0 || len > a.max_kv_len) {
    record_device_error(p.err, kDeviceErrorKvLenOutOfRange, b, len, a.max_kv_len);
    len = 0;
  } else {
    const int32_t n_pages = (len + P - 1) / P;
    count = n_pages;
    if (a.select.indices) {
      count = a.select.counts[list_id];
      // Distinct in-range indices never number more than the sequence's pages.
      if (count < 0 || count > a.select.stride || count > n_pages) {
        record_device_error(p.err, kDeviceErrorSelectOutOfRange, list_id, count, min(a.select.stride, n_pages));
        count = 0;
      }
    }
  }
  *len_out = len;
  *count_out = count;
}

// Stages entries [c0, c0 + nc) of (sequence b, KV head kvh)'s page list in shared memory, the
// block's threads striding over them with coalesced loads: s_off[i] is the element offset of
// row 0 of the page in this KV head, s_ntok[i] its valid tokens (0 for a bad selection entry
// or page id, which are recorded in the stream's error record, and the page skipped).
__device__ __forceinline__ void stage_page_list(const PagedDecodeParams& p, int32_t b, int32_t kvh, int64_t list_id,
                                                int32_t len, int32_t c0, int32_t nc, int64_t* s_off, int32_t* s_ntok) {
  const PagedDecodeArgs& a = p.a;
  const int32_t P = a.kv.page_tokens;
  const int32_t n_pages = (len + P - 1) / P;
  for (int i = threadIdx.x; i < nc; i += blockDim.x) {
    const int32_t pi = c0 + i;
    int32_t j = pi;
    bool ok = true;
    if (a.select.indices) {
      const int64_t flat = list_id * a.select.stride + pi;
      j = a.select.indices[flat];
      if (j < 0 || j >= n_pages) {
        record_device_error(p.err, kDeviceErrorSelectOutOfRange, flat, j, n_pages);
        ok = false;
      }
    }
    int32_t ntok = 0;
    int64_t off = 0;
    if (ok) {
      const int64_t flat = b * a.table.seq_stride + kvh * a.table.head_stride + j;
      const int32_t page = a.table.pages[flat];
      if (page < 0 || page >= a.kv.num_pages) {
        record_device_error(p.err, kDeviceErrorPageIdOutOfRange, flat, page, a.kv.num_pages);
      } else {
        ntok = min(P, len - j * P);
        off = a.kv.offset(page, kvh, 0);
      }
    }
    s_off[i] = off;
    s_ntok[i] = ntok;
  }
}

// Split-KV epilogue (attention_state.cuh): the last split block of this block row merges.
template <typename T, int D>
__device__ __forceinline__ void merge_splits_if_last(const PagedDecodeParams& p, int64_t row0, int n_rows) {
  merge_split_rows_if_last<T, D>(p.arrivals + blockIdx.y, p.splits, p.part_o, p.part_lse, p.rows, row0, n_rows,
                                 static_cast<T*>(p.a.o), p.a.lse);
}

// cp.async (sm_80+): a global -> shared copy that holds no register while in flight; with
// valid false it reads nothing and zero-fills the 16 bytes.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Tiling of one (dtype, head_dim, group tile). A tile is kTile tokens of K and of V, 8 KiB
// each whatever the dtype and head_dim (512 16-byte vectors: 4 per thread and tensor);
// kStages tiles are in flight per block, so a block keeps 48 KiB of loads outstanding while
// it computes on the fourth (about 140 KiB per SM at three blocks).
template <typename T, int D, int G>
struct Shape {
  static constexpr int kLanes = D / 8 < 32 ? D / 8 : 32;  // lanes sharing one token
  static constexpr int kElems = D / kLanes;               // channels per lane (8)
  static constexpr int kTokensPerWarp = 32 / kLanes;
  static constexpr int kParts = kWarps * kTokensPerWarp;  // lane groups in a block
  static constexpr int kTileBytes = 8192;
  static constexpr int kTile = kTileBytes / (D * static_cast<int>(sizeof(T)));  // tokens per tile
  static constexpr int kChunk = kTile / kParts;           // tokens per lane group per tile
  static constexpr int kRowVecs = D * static_cast<int>(sizeof(T)) / 16;  // 16-byte vectors per row
  static constexpr int kVecsPerThread = kTileBytes / 16 / kThreads;
  static constexpr int kStages = 4;
  static constexpr int kStageBytes = 2 * kTileBytes;      // K tile, then V tile
  static constexpr int kMergeBytes = (kParts * G * D + 2 * kParts * G) * 4;
  static constexpr int kSmemBytes = kStages * kStageBytes > kMergeBytes ? kStages * kStageBytes : kMergeBytes;
  static_assert(kElems % 8 == 0, "each lane holds whole 8-element packs");
  static_assert(kChunk >= 1 && kTile % kParts == 0, "a tile gives every lane group the same number of tokens");
  static_assert(kVecsPerThread * kThreads * 16 == kTileBytes, "threads cover a tile exactly");
  static_assert((kPageChunk % kTile) == 0, "tiles never straddle two page chunks (any page size)");
};

template <typename T, int D, int G>
__global__ void __launch_bounds__(kThreads, G >= 8 ? 2 : 3) paged_decode_kernel(PagedDecodeParams p) {
  using S = Shape<T, D, G>;
  constexpr int L = S::kLanes, E = S::kElems, TT = S::kTile;
  extern __shared__ __align__(16) unsigned char smem[];  // stages, reused by the final merge
  __shared__ int64_t s_off[kPageChunk];   // element offset of row 0 of the page (this KV head)
  __shared__ int32_t s_ntok[kPageChunk];  // valid tokens of the page; 0 skips it (bad index)
  __shared__ unsigned char s_valid[S::kStages][TT];
  __shared__ int32_t s_len, s_count;

  const PagedDecodeArgs& a = p.a;
  const int H = a.kv.num_kv_heads, P = a.kv.page_tokens;
  const int split = blockIdx.x;
  int y = blockIdx.y;
  const int tile = y % p.group_tiles;
  y /= p.group_tiles;
  const int kvh = y % H;
  const int b = y / H;
  const int h0 = kvh * p.group + tile * G;
  const int64_t list_id = static_cast<int64_t>(b) * H + kvh;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tg = lane / L, sl = lane % L;
  const int part = warp * S::kTokensPerWarp + tg;

  if (threadIdx.x == 0) sequence_pages(p, b, list_id, &s_len, &s_count);
  __syncthreads();
  const int32_t len = s_len;
  const int32_t p_begin = split * p.pages_per_split;
  const int32_t p_end = min(s_count, p_begin + p.pages_per_split);
  // The split's tokens, in page-list order, partial and skipped pages included (masked).
  const int32_t n_virt = max(0, p_end - p_begin) * P;
  const int32_t n_tiles = (n_virt + TT - 1) / TT;
  const int32_t chunk_tokens = kPageChunk * P;

  // Stages a chunk of the page list: page-table (and selection) entries, range-checked.
  auto load_chunk = [&](int32_t chunk) {
    const int32_t c0 = p_begin + chunk * kPageChunk;
    stage_page_list(p, b, kvh, list_id, len, c0, min(kPageChunk, p_end - c0), s_off, s_ntok);
  };

  const T* k_pages = static_cast<const T*>(a.kv.k);
  const T* v_pages = static_cast<const T*>(a.kv.v);
  const int64_t token_stride = a.kv.token_stride;
  // Issues tile x into its stage (every thread 4 vectors of K and 4 of V) and commits one
  // group, empty past the last tile, so that group counting stays uniform.
  auto issue = [&](int32_t x) {
    if (x < n_tiles) {
      const int stage = x % S::kStages;
      T* sk = reinterpret_cast<T*>(smem + stage * S::kStageBytes);
      T* sv = reinterpret_cast<T*>(smem + stage * S::kStageBytes + S::kTileBytes);
      const int32_t v0 = x * TT;
      const int32_t chunk_first = v0 / chunk_tokens * kPageChunk;  // page-list position of s_off[0]
#pragma unroll
      for (int k = 0; k < S::kVecsPerThread; ++k) {
        const int i = threadIdx.x + k * kThreads;
        const int tok = i / S::kRowVecs, vec = i % S::kRowVecs;
        const int32_t v = v0 + tok;
        bool valid = false;
        int64_t row = 0;
        if (v < n_virt) {
          const int32_t pi = v / P;
          const int32_t w = v - pi * P;
          const int ci = pi - chunk_first;
          valid = w < s_ntok[ci];
          row = s_off[ci] + w * token_stride + vec * (16 / static_cast<int>(sizeof(T)));
        }
        const int elem = tok * D + vec * (16 / static_cast<int>(sizeof(T)));
        cp_async16(sk + elem, valid ? k_pages + row : k_pages, valid);
        cp_async16(sv + elem, valid ? v_pages + row : v_pages, valid);
        if (vec == 0) s_valid[stage][tok] = valid;
      }
    }
    cp_async_commit();
  };

  float q[G][E], acc[G][E];
  SoftmaxState st[G];
  const T* qp = static_cast<const T*>(a.q) + (static_cast<int64_t>(b) * a.num_q_heads + h0) * D + sl * E;
#pragma unroll
  for (int h = 0; h < G; ++h) {
#pragma unroll
    for (int e = 0; e < E; e += 8) Pack8<T>::load(qp + h * D + e, &q[h][e]);
#pragma unroll
    for (int e = 0; e < E; ++e) {
      q[h][e] *= p.scale_log2;
      acc[h][e] = 0.f;
    }
  }

  using Raw = typename Pack8<T>::Raw;
  constexpr int PK = E / 8;  // packs per lane and token
  if (n_tiles > 0) load_chunk(0);
  __syncthreads();
#pragma unroll
  for (int x = 0; x < S::kStages - 1; ++x) issue(x);

  for (int32_t x = 0; x < n_tiles; ++x) {
    cp_async_wait<S::kStages - 2>();  // tile x has landed (this thread's copies) ...
    __syncthreads();                  // ... everyone's; and tile x - 1's stage is free again
    const int32_t next = x + S::kStages - 1;
    if (next < n_tiles && next * TT % chunk_tokens == 0) {  // uniform: the next tile opens a chunk
      load_chunk(next * TT / chunk_tokens);
      __syncthreads();
    }
    issue(next);

    const int stage = x % S::kStages;
    const T* sk = reinterpret_cast<const T*>(smem + stage * S::kStageBytes);
    const T* sv = reinterpret_cast<const T*>(smem + stage * S::kStageBytes + S::kTileBytes);
    Raw kx[S::kChunk][PK], vx[S::kChunk][PK];
    bool valid[S::kChunk];
#pragma unroll
    for (int c = 0; c < S::kChunk; ++c) {
      const int tok = c * S::kParts + part;
      valid[c] = s_valid[stage][tok] != 0;
#pragma unroll
      for (int pk = 0; pk < PK; ++pk) {
        kx[c][pk] = Pack8<T>::load_raw(sk + tok * D + sl * E + pk * 8);
        vx[c][pk] = Pack8<T>::load_raw(sv + tok * D + sl * E + pk * 8);
      }
    }
    float s[G][S::kChunk];
#pragma unroll
    for (int h = 0; h < G; ++h) {
#pragma unroll
      for (int c = 0; c < S::kChunk; ++c) {
        float dot = 0.f;
#pragma unroll
        for (int e = 0; e < E; ++e) dot = fmaf(q[h][e], Pack8<T>::unpack(kx[c][e / 8], e % 8), dot);
#pragma unroll
        for (int off = L / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        s[h][c] = valid[c] ? dot : kNegInf;
      }
    }
#pragma unroll
    for (int h = 0; h < G; ++h) {
      float m_chunk = s[h][0];
#pragma unroll
      for (int c = 1; c < S::kChunk; ++c) m_chunk = fmaxf(m_chunk, s[h][c]);
      if (m_chunk == kNegInf) continue;  // no valid token for this lane group
      const float m_new = fmaxf(st[h].m, m_chunk);
      const float factor = st[h].rescale_to(m_new);
#pragma unroll
      for (int e = 0; e < E; ++e) acc[h][e] *= factor;
#pragma unroll
      for (int c = 0; c < S::kChunk; ++c) {
        const float pc = valid[c] ? exp2f(s[h][c] - m_new) : 0.f;
        st[h].l += pc;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[h][e] = fmaf(pc, Pack8<T>::unpack(vx[c][e / 8], e % 8), acc[h][e]);
      }
    }
  }
  cp_async_wait<0>();  // only empty groups remain; leave nothing in flight
  __syncthreads();     // every stage read; the merge reuses the memory

  // Merge the block's lane groups: each publishes its state, then threads combine per channel.
  auto& s_acc = *reinterpret_cast<float(*)[S::kParts][G][D]>(smem);
  auto& s_m = *reinterpret_cast<float(*)[S::kParts][G]>(smem + S::kParts * G * D * 4);
  auto& s_l = *reinterpret_cast<float(*)[S::kParts][G]>(smem + (S::kParts * G * D + S::kParts * G) * 4);
  publish_part<S::kParts, G, D, E>(s_acc, s_m, s_l, part, sl, acc, st);
  __syncthreads();

  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    SoftmaxState merged;
    const float o = merge_parts<S::kParts, G, D>(s_acc, s_m, s_l, h, d, &merged);
    const float lse = merged.lse();
    const int64_t row = static_cast<int64_t>(b) * a.num_q_heads + h0 + h;
    if (p.splits == 1) {
      store_scalar(static_cast<T*>(a.o) + row * D + d, o);
      if (a.lse && d == 0) a.lse[row] = lse;
    } else {
      p.part_o[(split * p.rows + row) * D + d] = o;
      if (d == 0) p.part_lse[split * p.rows + row] = lse;
    }
  }
  if (p.splits > 1) merge_splits_if_last<T, D>(p, static_cast<int64_t>(b) * a.num_q_heads + h0, G);
}

// ----------------------------------------------------------------------------- tensor-core decode

// bf16, head_dim 64 / 128 (see the top of the file for the design). Shapes per head_dim:
// 64-key K/V tiles (16 per warp); D = 128: 32 KiB per stage (K + V), 3 stages, 2 blocks per
// SM (two tiles = 64 KiB in flight per block while it computes the third); D = 64: 16 KiB per
// stage, 4 stages, 3 blocks per SM (48 KiB in flight per block).
namespace tc {

constexpr int kKeys = 64;          // keys per K/V tile; warp w takes keys [16 w, 16 w + 16)
constexpr int kRows = 16;          // MMA rows: query heads of one KV head, padded to 16
constexpr int kPageChunk = 256;    // page-list entries staged in shared memory at a time

template <int D>
struct TcShape {
  static constexpr int kChunks = D / 8;              // 16-byte chunks per row
  static constexpr int kTileElems = kKeys * D;
  static constexpr int kStages = D == 128 ? 3 : 4;
  static constexpr int kSlots = kStages + 1;         // row-offset ring: tiles in flight + the next
  static constexpr int kStageElems = 2 * kTileElems;  // K tile, then V tile
  static constexpr int kStagesBytes = kStages * kStageElems * 2;
  static constexpr int kMergeBytes = (kWarps * kRows * D + 2 * kWarps * kRows) * 4;
  static constexpr int kSmemBytes = kStagesBytes > kMergeBytes ? kStagesBytes : kMergeBytes;
  static constexpr int kFillRowStep = kThreads / kChunks;       // rows one pass of the block fills
  static constexpr int kFillPasses = kKeys / kFillRowStep;      // passes per tensor and tile
  static constexpr int kMinBlocks = D == 128 ? 2 : 3;
  static_assert(kFillPasses * kFillRowStep == kKeys, "whole fill passes");
  static_assert(kPageChunk >= kStages * kKeys, "the prologue's tiles lie in the first page chunk (any page size)");
  static_assert(kPageChunk % kKeys == 0, "tiles never straddle two page chunks (any page size)");
};

__device__ __forceinline__ uint32_t load_pair(const uint16_t* p) { return __ldg(reinterpret_cast<const uint32_t*>(p)); }

// bf16x2 (lo half first) back to two floats.
__device__ __forceinline__ float bf16_lo(uint32_t x) { return __uint_as_float(x << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t x) { return __uint_as_float(x & 0xffff0000u); }

// kSplitP: P V as bf16 hi + bf16 lo parts (see the top of the file); false: P rounded to bf16.
template <int D, bool kSplitP>
__global__ void __launch_bounds__(kThreads, TcShape<D>::kMinBlocks) paged_decode_tc_kernel(PagedDecodeParams p) {
  using S = TcShape<D>;
  namespace pt = prefill_tc;
  extern __shared__ __align__(128) unsigned char tc_smem[];  // stages, reused by the final merge
  __shared__ int64_t s_off[kPageChunk];         // element offset of row 0 of the page (this KV head)
  __shared__ int32_t s_ntok[kPageChunk];        // valid tokens of the page; 0 skips it
  __shared__ int64_t s_row[S::kSlots][kKeys];   // element offset of key row r of tile u (slot u % kSlots); -1: none
  __shared__ uint32_t s_mask[S::kSlots][2];     // bit r of word r / 32: key row r is valid
  __shared__ int32_t s_len, s_count;
  uint16_t* s_kv = reinterpret_cast<uint16_t*>(tc_smem);

  const PagedDecodeArgs& a = p.a;
  const int H = a.kv.num_kv_heads, P = a.kv.page_tokens;
  const int split = blockIdx.x;
  int y = blockIdx.y;
  const int gtile = y % p.group_tiles;
  y /= p.group_tiles;
  const int kvh = y % H;
  const int b = y / H;
  const int h0 = kvh * p.group + gtile * kRows;
  const int n_rows = min(kRows, p.group - gtile * kRows);  // real query heads of the MMA rows
  const int64_t list_id = static_cast<int64_t>(b) * H + kvh;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  // Q fragments straight from global memory (A layout of m16n8k16: rows lane / 4 and + 8,
  // columns 2 (lane % 4) and + 8 of each 16-column step); padding rows are zero. Issued first,
  // so their latency overlaps the page-list set-up.
  const int qr = lane >> 2, qc = 2 * (lane & 3);
  uint32_t qa[D / 16][4];
  {
    const uint16_t* qp = static_cast<const uint16_t*>(a.q) + (static_cast<int64_t>(b) * a.num_q_heads + h0) * D;
    const bool lo_ok = qr < n_rows, hi_ok = qr + 8 < n_rows;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int col = kk * 16 + qc;
      qa[kk][0] = lo_ok ? load_pair(qp + qr * D + col) : 0u;
      qa[kk][1] = hi_ok ? load_pair(qp + (qr + 8) * D + col) : 0u;
      qa[kk][2] = lo_ok ? load_pair(qp + qr * D + col + 8) : 0u;
      qa[kk][3] = hi_ok ? load_pair(qp + (qr + 8) * D + col + 8) : 0u;
    }
  }

  if (tid == 0) sequence_pages(p, b, list_id, &s_len, &s_count);
  __syncthreads();
  const int32_t len = s_len;
  const int32_t p_begin = split * p.pages_per_split;
  const int32_t p_end = min(s_count, p_begin + p.pages_per_split);
  // The split's tokens, in page-list order, partial and skipped pages included (masked).
  const int32_t n_virt = max(0, p_end - p_begin) * P;
  const int32_t n_tiles = (n_virt + kKeys - 1) / kKeys;
  const int32_t chunk_tokens = kPageChunk * P;

  auto load_chunk = [&](int32_t chunk) {
    const int32_t c0 = p_begin + chunk * kPageChunk;
    stage_page_list(p, b, kvh, list_id, len, c0, min(kPageChunk, p_end - c0), s_off, s_ntok);
  };
  // Threads 0..63 (warps 0 and 1, whole warps) turn tile u's key rows into element offsets
  // (one division per thread and tile, instead of one per 16-byte copy) and their valid bits.
  // The chunk holding tile u must be staged.
  auto rows_of = [&](int32_t u) {
    if (tid < kKeys) {
      const int32_t v = u * kKeys + tid;
      int64_t off = -1;
      if (v < n_virt) {
        const int32_t pi = v / P;
        const int32_t w = v - pi * P;
        const int ci = pi - (u * kKeys / chunk_tokens) * kPageChunk;
        if (w < s_ntok[ci]) off = s_off[ci] + w * a.kv.token_stride;
      }
      s_row[u % S::kSlots][tid] = off;
      const uint32_t bits = __ballot_sync(0xffffffffu, off >= 0);
      if (lane == 0) s_mask[u % S::kSlots][warp] = bits;
    }
  };

  const uint16_t* k_pages = static_cast<const uint16_t*>(a.kv.k);
  const uint16_t* v_pages = static_cast<const uint16_t*>(a.kv.v);
  const int fill_chunk = tid % S::kChunks, fill_row = tid / S::kChunks;
  // Issues tile u (rows from its slot, published before the last barrier) into stage
  // u % kStages and commits one group, empty past the last tile, so group counting stays
  // uniform. Rows without data are zero-filled: a masked key then adds 0 * 0, never NaN.
  auto issue = [&](int32_t u) {
    if (u < n_tiles) {
      uint16_t* sk = s_kv + (u % S::kStages) * S::kStageElems;
      uint16_t* sv = sk + S::kTileElems;
      const int64_t* rows = s_row[u % S::kSlots];
#pragma unroll
      for (int it = 0; it < S::kFillPasses; ++it) {
        const int r = fill_row + it * S::kFillRowStep;
        const int64_t off = rows[r];
        const bool ok = off >= 0;
        const int64_t src = ok ? off + fill_chunk * 8 : 0;
        const int dst = pt::swizzle<D>(r, fill_chunk);
        pt::cp_async16(pt::smem_address(sk + dst), k_pages + src, ok);
        pt::cp_async16(pt::smem_address(sv + dst), v_pages + src, ok);
      }
    }
    pt::cp_async_commit();
  };

  // This thread's accumulators: rows qr (hf 0) and qr + 8 (hf 1), columns 8 dn + qc, + 1.
  float o_acc[D / 8][4];
  float m_run[2] = {kNegInf, kNegInf}, l_run[2] = {0.f, 0.f};
#pragma unroll
  for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
    for (int c = 0; c < 4; ++c) o_acc[dn][c] = 0.f;
  const float scale_log2 = p.scale_log2;

  if (n_tiles > 0) {
    load_chunk(0);
    __syncthreads();
#pragma unroll
    for (int u = 0; u < S::kStages; ++u) rows_of(u);
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < S::kStages - 1; ++u) issue(u);

  // ldmatrix lanes (as the prefill kernel): K (B operand, keys x dims): key lane % 8 + 8 (lane / 16),
  // chunk (lane / 8) % 2 -> {b0, b1} of keys 0..7, {b0, b1} of keys 8..15; V (trans, keys x
  // dims): key lane % 8 + 8 ((lane / 8) % 2), chunk lane / 16 -> dims 16 dp..+7 and +8..+15.
  const int bk_row = warp * 16 + (lane & 7) + ((lane >> 4) << 3), bk_chunk = (lane >> 3) & 1;
  const int bv_row = warp * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), bv_chunk = lane >> 4;

  for (int32_t x = 0; x < n_tiles; ++x) {
    pt::cp_async_wait<S::kStages - 2>();  // tile x has landed (this thread's copies) ...
    __syncthreads();                      // ... everyone's; tile x - 1's stage and slot are free
    issue(x + S::kStages - 1);
    {
      const int32_t u = x + S::kStages;  // its slot is tile x - 1's
      if (u < n_tiles) {
        if ((u * kKeys) % chunk_tokens == 0) {  // uniform: tile u opens a chunk; the old one was
          load_chunk(u * kKeys / chunk_tokens);  // last read by rows_of before the barrier above
          __syncthreads();
        }
        rows_of(u);
      }
    }

    const uint32_t bits = (s_mask[x % S::kSlots][warp >> 1] >> ((warp & 1) * 16)) & 0xffffu;
    if (bits == 0) continue;  // warp-uniform: none of this warp's 16 keys is valid
    const uint16_t* sk = s_kv + (x % S::kStages) * S::kStageElems;
    const uint16_t* sv = sk + S::kTileElems;

    // ---- S = Q K^T over the warp's 16 keys: s[nt] holds keys 8 nt + qc, + 1 of rows qr, qr + 8
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t bk[4];
      pt::ldmatrix_x4(pt::smem_address(sk + pt::swizzle<D>(bk_row, 2 * kk + bk_chunk)), bk);
      pt::mma_bf16(s[0], qa[kk], bk[0], bk[1]);
      pt::mma_bf16(s[1], qa[kk], bk[2], bk[3]);
    }
    if (bits != 0xffffu) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          if (!((bits >> (nt * 8 + qc + (c & 1))) & 1u)) s[nt][c] = kNegInf;
    }

    // ---- online softmax (base 2); a row's four threads (one quad) share its max
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float mx = fmaxf(fmaxf(s[0][2 * hf], s[0][2 * hf + 1]), fmaxf(s[1][2 * hf], s[1][2 * hf + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[hf], mx * scale_log2);
      const float m_use = m_new == kNegInf ? 0.f : m_new;  // no key yet: keep 2^(-inf - 0) = 0
      const float factor = pt::exp2_approx(m_run[hf] - m_use);
      m_run[hf] = m_new;
#pragma unroll
      for (int dn = 0; dn < D / 8; ++dn) {
        o_acc[dn][2 * hf] *= factor;
        o_acc[dn][2 * hf + 1] *= factor;
      }
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pe = pt::exp2_approx(fmaf(s[nt][2 * hf + e], scale_log2, -m_use));
          s[nt][2 * hf + e] = pe;
          sum += pe;
        }
      l_run[hf] = l_run[hf] * factor + sum;  // this thread's share; the quad sums at the end
    }

    // ---- O += P V: the C layout of S is the A layout of P (one 16-key step)
    uint32_t pa[4], pl[4];
    pa[0] = pt::pack_bf16x2(s[0][0], s[0][1]);
    pa[1] = pt::pack_bf16x2(s[0][2], s[0][3]);
    pa[2] = pt::pack_bf16x2(s[1][0], s[1][1]);
    pa[3] = pt::pack_bf16x2(s[1][2], s[1][3]);
    if constexpr (kSplitP) {
      pl[0] = pt::pack_bf16x2(s[0][0] - bf16_lo(pa[0]), s[0][1] - bf16_hi(pa[0]));
      pl[1] = pt::pack_bf16x2(s[0][2] - bf16_lo(pa[1]), s[0][3] - bf16_hi(pa[1]));
      pl[2] = pt::pack_bf16x2(s[1][0] - bf16_lo(pa[2]), s[1][1] - bf16_hi(pa[2]));
      pl[3] = pt::pack_bf16x2(s[1][2] - bf16_lo(pa[3]), s[1][3] - bf16_hi(pa[3]));
    }
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t bv[4];
      pt::ldmatrix_x4_trans(pt::smem_address(sv + pt::swizzle<D>(bv_row, 2 * dp + bv_chunk)), bv);
      if constexpr (kSplitP) {
        pt::mma_bf16(o_acc[2 * dp], pl, bv[0], bv[1]);
        pt::mma_bf16(o_acc[2 * dp + 1], pl, bv[2], bv[3]);
      }
      pt::mma_bf16(o_acc[2 * dp], pa, bv[0], bv[1]);
      pt::mma_bf16(o_acc[2 * dp + 1], pa, bv[2], bv[3]);
    }
  }
  pt::cp_async_wait<0>();  // only empty groups remain; leave nothing in flight
  __syncthreads();         // every stage read; the merge reuses the memory

  // ---- merge the four warps' states (each covered a quarter of every tile's keys)
  auto& s_acc = *reinterpret_cast<float(*)[kWarps][kRows][D]>(tc_smem);
  auto& s_m = *reinterpret_cast<float(*)[kWarps][kRows]>(tc_smem + kWarps * kRows * D * 4);
  auto& s_l = *reinterpret_cast<float(*)[kWarps][kRows]>(tc_smem + (kWarps * kRows * D + kWarps * kRows) * 4);
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int r = qr + 8 * hf;
    float l = l_run[hf];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
      *reinterpret_cast<float2*>(&s_acc[warp][r][dn * 8 + qc]) = make_float2(o_acc[dn][2 * hf], o_acc[dn][2 * hf + 1]);
    if ((lane & 3) == 0) {
      s_m[warp][r] = m_run[hf];
      s_l[warp][r] = l;
    }
  }
  __syncthreads();

  for (int idx = tid; idx < n_rows * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    SoftmaxState merged;
    const float o = merge_parts<kWarps, kRows, D>(s_acc, s_m, s_l, h, d, &merged);
    const float lse = merged.lse();
    const int64_t row = static_cast<int64_t>(b) * a.num_q_heads + h0 + h;
    if (p.splits == 1) {
      store_scalar(static_cast<uint16_t*>(a.o) + row * D + d, o);
      if (a.lse && d == 0) a.lse[row] = lse;
    } else {
      p.part_o[(split * p.rows + row) * D + d] = o;
      if (d == 0) p.part_lse[split * p.rows + row] = lse;
    }
  }
  if (p.splits > 1) merge_splits_if_last<uint16_t, D>(p, static_cast<int64_t>(b) * a.num_q_heads + h0, n_rows);
}

}  // namespace tc

template <typename T, int D, int G>
constexpr int smem_bytes() {
  return Shape<T, D, G>::kSmemBytes;
}

int group_tile(int32_t group) {
  for (int g : {8, 4, 2}) if (group % g == 0) return g;
  return 1;
}

uint64_t align256(uint64_t x) { return (x + 255) / 256 * 256; }

uint64_t split_bytes(int64_t splits, int64_t rows, int32_t head_dim) {
  return align256(static_cast<uint64_t>(splits * rows * head_dim) * 4) + align256(static_cast<uint64_t>(splits * rows) * 4);
}

// Splits of each (sequence, KV head, tile) page list, for equal sequences of max_kv_len: the
// fewest splits whose blocks fill the waves of `slots` (SMs x resident blocks per SM) within
// 3% of the best count (a partial last wave, or a single partial one, leaves SMs idle or
// short of loads in flight). At most 2 x the splits of one full wave, at least
// kMinTokensPerSplit tokens each.
int64_t wanted_splits(int64_t slots, int64_t blocks, int32_t max_kv_len) {
  const int64_t by_len = std::max<int64_t>(1, max_kv_len / kMinTokensPerSplit);
  const int64_t most = std::min(by_len, std::max<int64_t>(4, 2 * ((slots + blocks - 1) / blocks)));
  auto efficiency = [&](int64_t splits) {
    const int64_t n = blocks * splits;
    return static_cast<double>(n) / static_cast<double>((n + slots - 1) / slots * slots);
  };
  double best = 0;
  for (int64_t splits = 1; splits <= most; ++splits) best = std::max(best, efficiency(splits));
  for (int64_t splits = 1; splits <= most; ++splits)
    if (efficiency(splits) >= 0.97 * best) return splits;
  return 1;
}

constexpr int kMaxBlocksPerSm = 4;  // bound used by the workspace query (launch bounds allow 2 or 3)

struct Plan {
  int32_t splits;
  int32_t pages_per_split;
  uint64_t part_o_bytes;  // workspace layout: part_o, then part_lse (256-byte aligned)
};

// Splits cover whole K/V tiles of tile_tokens keys where the page size divides the tile:
// rounding pages_per_split up to whole tiles never adds a tile to a block (ceil(pages * P /
// tile) is unchanged) and drops the blocks and partial states the rounding frees.
//
// Expected time, batch 1 x 32K, bf16, Hq = 32, Hkv = 8, D = 128, P = 16, tensor-core kernel
// (2 resident blocks per SM: 264 slots on 132 SMs; 8 block rows): wanted_splits gives 33, so
// 63 pages (1008 keys, 16 tiles, the last partial) per split; whole tiles make it 64 pages =
// 16 full tiles and 32 splits: 256 blocks in one wave, every block 16 tiles = 512 KiB of K/V.
// Bytes: 32768 keys x 8 heads x 2 (K, V) x 256 B = 134 MB -> 30.0 us at 4.48 TB/s, the
// per-SM share (2 blocks, 1 MiB) at 34 GB/s per SM. Fixed costs on top: the launch (event to
// first block, ~3 us), each block's dependent start (kv_len, then the page-table chunk, then
// the first cp.async: ~3 round trips, ~2 us), the pipeline drain, and the last split block's
// merge of 32 partials of 4 rows (32 x 2 KiB from L2 in 4 rounds of 8 loads, ~1-2 us): about
// 36 us expected, 83% of the read roofline (the separate merge launch this replaced added ~5 us).
Plan make_plan(int64_t slots, const PagedDecodeArgs& a, int32_t group_tiles, uint64_t workspace_bytes,
               int32_t tile_tokens) {
  const int64_t blocks = static_cast<int64_t>(a.batch) * a.kv.num_kv_heads * group_tiles;
  const int64_t rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  int64_t max_pages = (static_cast<int64_t>(a.max_kv_len) + a.kv.page_tokens - 1) / a.kv.page_tokens;
  if (a.select.indices) max_pages = std::min<int64_t>(max_pages, a.select.stride);
  int64_t splits = std::min(wanted_splits(slots, blocks, a.max_kv_len), std::max<int64_t>(1, max_pages));
  while (splits > 1 && split_bytes(splits, rows, a.kv.head_dim) > workspace_bytes)
    splits = std::min<int64_t>(splits - 1, workspace_bytes / split_bytes(1, rows, a.kv.head_dim));
  if (splits < 2) splits = 1;
  Plan plan;
  int64_t pages_per_split = std::max<int64_t>(1, (max_pages + splits - 1) / splits);
  const int32_t P = a.kv.page_tokens;
  if (P <= tile_tokens && tile_tokens % P == 0) {
    const int64_t tile_pages = tile_tokens / P;
    pages_per_split = (pages_per_split + tile_pages - 1) / tile_pages * tile_pages;
  }
  plan.pages_per_split = static_cast<int32_t>(pages_per_split);
  plan.splits = max_pages == 0 ? 1 : static_cast<int32_t>((max_pages + plan.pages_per_split - 1) / plan.pages_per_split);
  plan.part_o_bytes = align256(static_cast<uint64_t>(plan.splits) * rows * a.kv.head_dim * 4);
  return plan;
}

struct DecodeKernel {
  void (*fn)(PagedDecodeParams);
  int smem_bytes;   // dynamic shared memory
  int tile_tokens;  // keys per K/V tile
};

template <typename T, int D, int G>
DecodeKernel kernel_of() {
  return {paged_decode_kernel<T, D, G>, smem_bytes<T, D, G>(), Shape<T, D, G>::kTile};
}

template <typename T, int D>
DecodeKernel kernel_d(int g) {
  switch (g) {
    case 8: return kernel_of<T, D, 8>();
    case 4: return kernel_of<T, D, 4>();
    case 2: return kernel_of<T, D, 2>();
    default: return kernel_of<T, D, 1>();
  }
}

template <typename T>
DecodeKernel kernel_t(int g, int d) {
  switch (d) {
    case 64: return kernel_d<T, 64>(g);
    case 128: return kernel_d<T, 128>(g);
    default: return kernel_d<T, 256>(g);
  }
}

template <int D>
DecodeKernel tc_kernel_of(bool split_p) {
  return {split_p ? tc::paged_decode_tc_kernel<D, true> : tc::paged_decode_tc_kernel<D, false>,
          tc::TcShape<D>::kSmemBytes, tc::kKeys};
}

// Which decode kernel runs: KVASIR_PAGED_DECODE_KERNEL = auto (unset: the tensor-core kernel
// wherever it applies), cuda-core (always the CUDA-core kernel) or tensor-core (the same as
// auto; the name says what a benchmark asked for), and for benchmarks only tensor-core-bf16p
// (P rounded to bf16, see the top of the file). A performance knob for benchmarks and tests
// comparing them: shapes the tensor-core kernel does not cover run the CUDA-core kernel
// whatever it says.
enum class KernelChoice { kAuto, kCudaCore, kTensorCore, kTensorCoreBf16P };

KernelChoice kernel_choice() {
  const char* env = std::getenv("KVASIR_PAGED_DECODE_KERNEL");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "auto") == 0) return KernelChoice::kAuto;
  if (std::strcmp(env, "cuda-core") == 0) return KernelChoice::kCudaCore;
  if (std::strcmp(env, "tensor-core") == 0) return KernelChoice::kTensorCore;
  if (std::strcmp(env, "tensor-core-bf16p") == 0) return KernelChoice::kTensorCoreBf16P;
  fail(KV_STATUS_INVALID_ARGUMENT, "KVASIR_PAGED_DECODE_KERNEL=", env,
       " must be auto, cuda-core, tensor-core or tensor-core-bf16p");
}

// The tensor-core kernel: bf16 with head_dim 64 or 128, any GQA group (tiles of 16 heads),
// page size, layout, page tables and selections.
bool tensor_core_covers(const PagedDecodeArgs& a) {
  return a.dtype == KV_DTYPE_BF16 && (a.kv.head_dim == 64 || a.kv.head_dim == 128);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

// Sets the kernel's attributes on the device the first time it runs there and returns its
// resident blocks per SM (clamped to [1, kMaxBlocksPerSm]); later calls find both cached, so a
// decode's host cost is its launch (the attribute calls and the occupancy query took several
// us per call, more than a small decode's GPU time when calls are issued back to back).
int prepare_kernel(int32_t device, const DecodeKernel& kernel, bool carveout_max_shared) {
  struct Entry {
    void (*fn)(PagedDecodeParams);
    int32_t device;
    int resident;
  };
  static std::mutex mu;
  static std::vector<Entry> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const Entry& e : cache)
      if (e.fn == kernel.fn && e.device == device) return e.resident;
  }
  if (carveout_max_shared)
    KV_CUDA_CHECK(
        cudaFuncSetAttribute(kernel.fn, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  // More than the default 48 KiB of dynamic shared memory needs opting in (per device).
  KV_CUDA_CHECK(cudaFuncSetAttribute(kernel.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, kernel.smem_bytes));
  int resident = 0;
  KV_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel.fn, kThreads, kernel.smem_bytes));
  resident = std::max(1, std::min(resident, kMaxBlocksPerSm));
  std::lock_guard<std::mutex> lock(mu);
  cache.push_back({kernel.fn, device, resident});
  return resident;
}

}  // namespace

void paged_append(Stream* s, const PagedAppendArgs& a) {
  DeviceGuard guard(s->device);
  KV_REQUIRE(aligned16(a.k) && aligned16(a.v),
             "k and v must be 16-byte aligned on CUDA (kv_buffer_init memory is; check sub-buffer offsets)");
  const int32_t esize = static_cast<int32_t>(dtype_size(a.dtype));
  const int32_t vecs_per_row = a.kv.head_dim * esize / 16;
  const int64_t total = a.num_tokens * a.kv.num_kv_heads * vecs_per_row;
  const int64_t max_blocks = static_cast<int64_t>(multiprocessor_count(s->device)) * 16;
  const int blocks =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((total + kAppendThreads - 1) / kAppendThreads, max_blocks)));
  paged_append_kernel<<<blocks, kAppendThreads, 0, s->stream>>>(a, vecs_per_row, esize, s->error_record);
  KV_CUDA_CHECK_LAUNCH();
}

uint64_t paged_decode_workspace_bytes(int32_t device, int32_t batch, int32_t num_q_heads, int32_t head_dim,
                                      int32_t max_kv_len) {
  // An upper bound of make_plan's splits (wanted_splits' limit) for either kernel: blocks >=
  // batch (num_kv_heads and the group tiles are unknown here; both kernels launch batch *
  // num_kv_heads * group tiles blocks per split), at most kMaxBlocksPerSm resident blocks per
  // SM (paged_decode clamps the occupancy query to it), at least kMinTokensPerSplit tokens each.
  const int64_t slots = static_cast<int64_t>(multiprocessor_count(device)) * kMaxBlocksPerSm;
  const int64_t by_len = std::max<int64_t>(1, max_kv_len / kMinTokensPerSplit);
  const int64_t splits = std::min(by_len, std::max<int64_t>(4, 2 * ((slots + batch - 1) / batch)));
  return splits > 1 ? split_bytes(splits, static_cast<int64_t>(batch) * num_q_heads, head_dim) : 0;
}

void paged_decode(Stream* s, const PagedDecodeArgs& a) {
  DeviceGuard guard(s->device);
  KV_REQUIRE(aligned16(a.q), "q must be 16-byte aligned on CUDA (kv_buffer_init memory is; check sub-buffer offsets)");
  const int32_t group = a.num_q_heads / a.kv.num_kv_heads;
  // The workspace needs 256-byte alignment for the vector loads of the merge.
  const uint64_t usable = (reinterpret_cast<uintptr_t>(a.workspace) & 255u) ? 0 : a.workspace_bytes;
  const KernelChoice choice = kernel_choice();
  const bool tensor_cores = tensor_core_covers(a) && choice != KernelChoice::kCudaCore;
  DecodeKernel kernel;
  int32_t group_tiles;  // blocks per (sequence, KV head, split): tiles of the GQA group
  if (tensor_cores) {
    const bool split_p = choice != KernelChoice::kTensorCoreBf16P;
    kernel = a.kv.head_dim == 64 ? tc_kernel_of<64>(split_p) : tc_kernel_of<128>(split_p);
    group_tiles = (group + tc::kRows - 1) / tc::kRows;
  } else {
    const int g_tile = group_tile(group);
    kernel = a.dtype == KV_DTYPE_BF16 ? kernel_t<uint16_t>(g_tile, a.kv.head_dim) : kernel_t<float>(g_tile, a.kv.head_dim);
    group_tiles = group / g_tile;
  }
  const int resident = prepare_kernel(s->device, kernel, tensor_cores);
  const Plan plan =
      make_plan(static_cast<int64_t>(multiprocessor_count(s->device)) * resident, a, group_tiles, usable, kernel.tile_tokens);
  PagedDecodeParams p;
  p.a = a;
  p.part_o = plan.splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  p.part_lse =
      plan.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(a.workspace) + plan.part_o_bytes) : nullptr;
  p.group = group;
  p.group_tiles = group_tiles;
  p.splits = plan.splits;
  p.pages_per_split = plan.pages_per_split;
  p.rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  p.scale_log2 = a.sm_scale * kLog2e;
  p.err = s->error_record;
  p.arrivals = s->arrivals;
  const int64_t grid_y = static_cast<int64_t>(a.batch) * a.kv.num_kv_heads * p.group_tiles;
  if (grid_y > 65535)  // also the bound of the stream's arrival counters (kArrivalCounters)
    fail(KV_STATUS_UNSUPPORTED, "batch * num_kv_heads * group tiles = ", grid_y, " exceeds 65535 blocks");
  dim3 grid(static_cast<unsigned>(plan.splits), static_cast<unsigned>(grid_y));
  kernel.fn<<<grid, kThreads, kernel.smem_bytes, s->stream>>>(p);
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace kv::cuda
