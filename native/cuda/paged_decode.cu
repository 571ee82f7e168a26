// Paged KV append and paged decode (split-KV, GQA-aware, sparse with a page selection).
//
// Append: one thread per 16-byte vector of a (token, KV head) row, consecutive threads on
// consecutive vectors of a row (a bf16 row of 128 channels is 16 vectors, half a warp): K and
// V are read and written with coalesced 16-byte accesses. Slots are range-checked on the
// device; a bad slot is recorded in the stream's error record and its row is not written.
//
// Decode. Grid: x = splits of the page list, y = (sequence, KV head, tile of G query heads of
// the GQA group): a block reads its K/V bytes once for the whole tile (the whole group when
// the group has at most 8 heads). The block walks its split's page list in chunks of
// kPageChunk entries: the chunk's page-table (and selection) entries are loaded with
// coalesced loads, range-checked and turned into row offsets in shared memory once, so the
// token loop never waits on a page-table load. Within the chunk the block streams tokens like
// the dense decode kernel (attention_decode.cu): groups of L lanes share a token (L * 8 =
// head_dim, at most 32 lanes), each lane holding 8 channels of q, k, v and the accumulators
// of all G heads; scores are reduced with shuffles; each lane group keeps an online softmax
// (base 2). The block's lane groups are merged in shared memory (attention_state.cuh); with
// several splits the partial states go to the workspace and the N-way merge kernel
// (merge_state.cu) combines them. Splits past a sequence's page count write the empty state.
#include "cuda/paged_decode.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kPageChunk = 128;           // page-list entries staged in shared memory at a time
constexpr int64_t kMinTokensPerSplit = 256;
constexpr int kAppendThreads = 256;

__device__ __forceinline__ void record_error(DeviceErrorRecord* err, int32_t code, int64_t entry, int64_t value,
                                             int64_t limit) {
  if (atomicCAS(&err->code, 0, code) == 0) {
    err->entry = entry;
    err->value = value;
    err->limit = limit;
    __threadfence_system();
  }
}

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
      if (vec == 0) record_error(err, kDeviceErrorSlotOutOfRange, entry, slot, capacity);
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
  int32_t group, group_tiles, splits, pages_per_split;
  int64_t rows;
  float scale_log2;  // sm_scale * log2(e): scores come out in base 2
  DeviceErrorRecord* err;
};

template <int D, int G>
struct Shape {
  static constexpr int kLanes = D / 8 < 32 ? D / 8 : 32;  // lanes sharing one token
  static constexpr int kElems = D / kLanes;               // channels per lane (8)
  static constexpr int kTokensPerWarp = 32 / kLanes;
  static constexpr int kChunk = G >= 8 ? 2 : 4;           // tokens per lane group per step
  static constexpr int kParts = kWarps * kTokensPerWarp;  // lane groups in a block
  static constexpr int kStep = kParts * kChunk;           // tokens per block step
  static_assert(kElems % 8 == 0, "each lane holds whole 8-element packs");
};

template <typename T, int D, int G>
__global__ void __launch_bounds__(kThreads, G >= 8 ? 2 : 3) paged_decode_kernel(PagedDecodeParams p) {
  using S = Shape<D, G>;
  constexpr int L = S::kLanes, E = S::kElems;
  __shared__ float s_acc[S::kParts][G][D];
  __shared__ float s_m[S::kParts][G];
  __shared__ float s_l[S::kParts][G];
  __shared__ int64_t s_off[kPageChunk];  // element offset of row 0 of the page (this KV head)
  __shared__ int32_t s_ntok[kPageChunk]; // valid tokens of the page; 0 skips it (bad index)
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

  if (threadIdx.x == 0) {
    int32_t len = a.table.kv_lens[b];
    int32_t count = 0;
    if (len < 0 || len > a.max_kv_len) {
      record_error(p.err, kDeviceErrorKvLenOutOfRange, b, len, a.max_kv_len);
      len = 0;
    } else {
      const int32_t n_pages = (len + P - 1) / P;
      count = n_pages;
      if (a.select.indices) {
        count = a.select.counts[list_id];
        // Distinct in-range indices never number more than the sequence's pages.
        if (count < 0 || count > a.select.stride || count > n_pages) {
          record_error(p.err, kDeviceErrorSelectOutOfRange, list_id, count, min(a.select.stride, n_pages));
          count = 0;
        }
      }
    }
    s_len = len;
    s_count = count;
  }
  __syncthreads();
  const int32_t len = s_len;
  const int32_t n_pages = (len + P - 1) / P;
  const int32_t p_begin = split * p.pages_per_split;
  const int32_t p_end = min(s_count, p_begin + p.pages_per_split);

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

  const T* kbase = static_cast<const T*>(a.kv.k) + sl * E;
  const T* vbase = static_cast<const T*>(a.kv.v) + sl * E;
  const int64_t token_stride = a.kv.token_stride;
  using Raw = typename Pack8<T>::Raw;
  constexpr int PK = E / 8;  // packs per lane and token

  for (int32_t c0 = p_begin; c0 < p_end; c0 += kPageChunk) {
    const int nc = min(kPageChunk, p_end - c0);
    __syncthreads();  // the previous chunk's readers are done with s_off / s_ntok
    for (int i = threadIdx.x; i < nc; i += kThreads) {
      const int32_t pi = c0 + i;
      int32_t j = pi;
      bool ok = true;
      if (a.select.indices) {
        const int64_t flat = list_id * a.select.stride + pi;
        j = a.select.indices[flat];
        if (j < 0 || j >= n_pages) {
          record_error(p.err, kDeviceErrorSelectOutOfRange, flat, j, n_pages);
          ok = false;
        }
      }
      int32_t ntok = 0;
      int64_t off = 0;
      if (ok) {
        const int64_t flat = b * a.table.seq_stride + kvh * a.table.head_stride + j;
        const int32_t page = a.table.pages[flat];
        if (page < 0 || page >= a.kv.num_pages) {
          record_error(p.err, kDeviceErrorPageIdOutOfRange, flat, page, a.kv.num_pages);
        } else {
          ntok = min(P, len - j * P);
          off = a.kv.offset(page, kvh, 0);
        }
      }
      s_off[i] = off;
      s_ntok[i] = ntok;
    }
    __syncthreads();

    const int n_virt = nc * P;  // tokens of the chunk's pages, partial or skipped ones included
    for (int base = 0; base < n_virt; base += S::kStep) {
      // K and V stay packed in registers (bf16: half the registers), unpacked where used.
      Raw kx[S::kChunk][PK], vx[S::kChunk][PK];
      bool valid[S::kChunk];
#pragma unroll
      for (int c = 0; c < S::kChunk; ++c) {
        const int u = base + (c * kWarps + warp) * S::kTokensPerWarp + tg;
        int64_t row = 0;
        valid[c] = false;
        if (u < n_virt) {
          const int pi = u / P;
          const int w = u - pi * P;
          valid[c] = w < s_ntok[pi];
          row = s_off[pi] + w * token_stride;
        }
#pragma unroll
        for (int pk = 0; pk < PK; ++pk) {
          if (valid[c]) {
            kx[c][pk] = Pack8<T>::load_raw(kbase + row + pk * 8);
            vx[c][pk] = Pack8<T>::load_raw(vbase + row + pk * 8);
          } else {
            kx[c][pk] = vx[c][pk] = Raw{};
          }
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
  }

  // Merge the block's lane groups: each publishes its state, then threads combine per channel.
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
}

int group_tile(int32_t group) {
  for (int g : {8, 4, 2}) if (group % g == 0) return g;
  return 1;
}

uint64_t align256(uint64_t x) { return (x + 255) / 256 * 256; }

uint64_t split_bytes(int64_t splits, int64_t rows, int32_t head_dim) {
  return align256(static_cast<uint64_t>(splits * rows * head_dim) * 4) + align256(static_cast<uint64_t>(splits * rows) * 4);
}

// Splits of each (sequence, KV head, tile) page list. With fewer blocks than the GPU holds at
// once (slots = SMs x resident blocks per SM), split until one full wave is covered (floor:
// a wave and a few blocks would cost two waves). With more, split a little (at most 4) only
// when that fills the last wave noticeably better: equal long sequences leave a partial last
// wave idle otherwise. At least kMinTokensPerSplit tokens per split.
int64_t wanted_splits(int64_t slots, int64_t blocks, int32_t max_kv_len) {
  const int64_t by_len = std::max<int64_t>(1, max_kv_len / kMinTokensPerSplit);
  if (blocks < slots) return std::max<int64_t>(1, std::min(slots / blocks, by_len));
  auto efficiency = [&](int64_t splits) {
    const int64_t n = blocks * splits;
    return static_cast<double>(n) / static_cast<double>((n + slots - 1) / slots * slots);
  };
  int64_t best = 1;
  double best_eff = efficiency(1);
  for (int64_t splits = 2; splits <= std::min<int64_t>(4, by_len); ++splits)
    if (efficiency(splits) > best_eff + 0.03) {
      best = splits;
      best_eff = efficiency(splits);
    }
  return best;
}

constexpr int kMaxBlocksPerSm = 4;  // bound used by the workspace query (launch bounds allow 2 or 3)

struct Plan {
  int32_t splits;
  int32_t pages_per_split;
  uint64_t part_o_bytes;  // workspace layout: part_o, then part_lse (256-byte aligned)
};

Plan make_plan(int64_t slots, const PagedDecodeArgs& a, int32_t group_tiles, uint64_t workspace_bytes) {
  const int64_t blocks = static_cast<int64_t>(a.batch) * a.kv.num_kv_heads * group_tiles;
  const int64_t rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  int64_t max_pages = (static_cast<int64_t>(a.max_kv_len) + a.kv.page_tokens - 1) / a.kv.page_tokens;
  if (a.select.indices) max_pages = std::min<int64_t>(max_pages, a.select.stride);
  int64_t splits = std::min(wanted_splits(slots, blocks, a.max_kv_len), std::max<int64_t>(1, max_pages));
  while (splits > 1 && split_bytes(splits, rows, a.kv.head_dim) > workspace_bytes)
    splits = std::min<int64_t>(splits - 1, workspace_bytes / split_bytes(1, rows, a.kv.head_dim));
  if (splits < 2) splits = 1;
  Plan plan;
  plan.pages_per_split = static_cast<int32_t>(std::max<int64_t>(1, (max_pages + splits - 1) / splits));
  plan.splits = max_pages == 0 ? 1 : static_cast<int32_t>((max_pages + plan.pages_per_split - 1) / plan.pages_per_split);
  plan.part_o_bytes = align256(static_cast<uint64_t>(plan.splits) * rows * a.kv.head_dim * 4);
  return plan;
}

using DecodeKernel = void (*)(PagedDecodeParams);

template <typename T, int D>
DecodeKernel kernel_d(int g) {
  switch (g) {
    case 8: return paged_decode_kernel<T, D, 8>;
    case 4: return paged_decode_kernel<T, D, 4>;
    case 2: return paged_decode_kernel<T, D, 2>;
    default: return paged_decode_kernel<T, D, 1>;
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

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

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
  // An upper bound of make_plan's splits: blocks >= batch (num_kv_heads and the group tiles
  // are unknown here), at most kMaxBlocksPerSm resident blocks per SM, at most 4 splits when
  // the blocks fill the GPU.
  const int64_t slots = static_cast<int64_t>(multiprocessor_count(device)) * kMaxBlocksPerSm;
  const int64_t by_len = std::max<int64_t>(1, max_kv_len / kMinTokensPerSplit);
  const int64_t splits = std::min(by_len, std::max<int64_t>(4, slots / std::max(1, batch)));
  return splits > 1 ? split_bytes(splits, static_cast<int64_t>(batch) * num_q_heads, head_dim) : 0;
}

void paged_decode(Stream* s, const PagedDecodeArgs& a) {
  DeviceGuard guard(s->device);
  KV_REQUIRE(aligned16(a.q), "q must be 16-byte aligned on CUDA (kv_buffer_init memory is; check sub-buffer offsets)");
  const int32_t group = a.num_q_heads / a.kv.num_kv_heads;
  const int g_tile = group_tile(group);
  // The workspace needs 256-byte alignment for the vector loads of the merge.
  const uint64_t usable = (reinterpret_cast<uintptr_t>(a.workspace) & 255u) ? 0 : a.workspace_bytes;
  const DecodeKernel kernel =
      a.dtype == KV_DTYPE_BF16 ? kernel_t<uint16_t>(g_tile, a.kv.head_dim) : kernel_t<float>(g_tile, a.kv.head_dim);
  int resident = 0;
  KV_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, kThreads, 0));
  resident = std::max(1, std::min(resident, kMaxBlocksPerSm));
  const Plan plan = make_plan(static_cast<int64_t>(multiprocessor_count(s->device)) * resident, a, group / g_tile, usable);
  PagedDecodeParams p;
  p.a = a;
  p.part_o = plan.splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  p.part_lse =
      plan.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(a.workspace) + plan.part_o_bytes) : nullptr;
  p.group = group;
  p.group_tiles = group / g_tile;
  p.splits = plan.splits;
  p.pages_per_split = plan.pages_per_split;
  p.rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  p.scale_log2 = a.sm_scale * kLog2e;
  p.err = s->error_record;
  const int64_t grid_y = static_cast<int64_t>(a.batch) * a.kv.num_kv_heads * p.group_tiles;
  if (grid_y > 65535)
    fail(KV_STATUS_UNSUPPORTED, "batch * num_q_heads / group tile = ", grid_y, " exceeds 65535 blocks");
  dim3 grid(static_cast<unsigned>(plan.splits), static_cast<unsigned>(grid_y));
  kernel<<<grid, kThreads, 0, s->stream>>>(p);
  KV_CUDA_CHECK_LAUNCH();
  if (plan.splits > 1) {
    MergeArgs m;
    m.in.count = plan.splits;
    m.in.o_base = p.part_o;
    m.in.lse_base = p.part_lse;
    m.in.o_state_stride = p.rows * a.kv.head_dim;
    m.in.lse_state_stride = p.rows;
    m.in_dtype = KV_DTYPE_F32;
    m.out_dtype = a.dtype;
    m.o_out = a.o;
    m.lse_out = a.lse;
    m.rows = p.rows;
    m.head_dim = a.kv.head_dim;
    merge_states(s, m);
  }
}

}  // namespace kv::cuda
