// Dense single-query (decode) attention over contiguous K/V, split-KV.
//
// Grid: x = KV splits, y = (sequence, KV head, tile of G query heads of the GQA group).
// A block of 4 warps streams its split's tokens; within a warp, groups of L lanes share a
// token (L * 8 = head_dim, at most 32 lanes), each lane holding 8 channels of q, k, v and the
// accumulators of all G heads, so K and V are read once per GQA group. Scores are reduced
// across the L lanes with shuffles; each lane group keeps an online softmax (base 2) and
// rescales once per chunk of tokens. At the end the block's lane groups are merged in shared
// memory with the state merge; with several splits the partial states go to the workspace
// and the N-way merge kernel combines them (merge_state.cu).
#include <cuda_runtime.h>


#include <algorithm>

#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int64_t kMinTokensPerSplit = 256;

struct DecodeParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;           // final output (one split) ...
  float* lse;        // ... and its lse (may be null)
  float* part_o;     // [splits][rows][D] fp32 partial states (several splits)
  float* part_lse;   // [splits][rows]
  int32_t num_q_heads, num_kv_heads, group, group_tiles, splits;
  int64_t kv_len, split_len, rows;
  float scale_log2;  // sm_scale * log2(e): scores come out in base 2
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
__global__ void __launch_bounds__(kThreads, G >= 8 ? 2 : 3) attention_decode_kernel(DecodeParams p) {
  using S = Shape<D, G>;
  constexpr int L = S::kLanes, E = S::kElems;
  __shared__ float s_acc[S::kParts][G][D];
  __shared__ float s_m[S::kParts][G];
  __shared__ float s_l[S::kParts][G];

  const int split = blockIdx.x;
  int y = blockIdx.y;
  const int tile = y % p.group_tiles;
  y /= p.group_tiles;
  const int kvh = y % p.num_kv_heads;
  const int b = y / p.num_kv_heads;
  const int h0 = kvh * p.group + tile * G;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tg = lane / L, sl = lane % L;
  const int part = warp * S::kTokensPerWarp + tg;

  float q[G][E], acc[G][E];
  SoftmaxState st[G];
  const T* qp = static_cast<const T*>(p.q) + (static_cast<int64_t>(b) * p.num_q_heads + h0) * D + sl * E;
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

  const int64_t row_stride = static_cast<int64_t>(p.num_kv_heads) * D;
  const int64_t seq_offset = static_cast<int64_t>(b) * p.kv_len * row_stride + static_cast<int64_t>(kvh) * D + sl * E;
  const T* kp = static_cast<const T*>(p.k) + seq_offset;
  const T* vp = static_cast<const T*>(p.v) + seq_offset;
  const int64_t t_begin = split * p.split_len;
  const int64_t t_end = min(p.kv_len, t_begin + p.split_len);

  using Raw = typename Pack8<T>::Raw;
  constexpr int P = E / 8;  // packs per lane and token
  for (int64_t base = t_begin; base < t_end; base += S::kStep) {
    // K and V stay packed in registers (bf16: half the registers), unpacked where used.
    Raw kx[S::kChunk][P], vx[S::kChunk][P];
    bool valid[S::kChunk];
#pragma unroll
    for (int c = 0; c < S::kChunk; ++c) {
      const int64_t t = base + (c * kWarps + warp) * S::kTokensPerWarp + tg;
      valid[c] = t < t_end;
#pragma unroll
      for (int pk = 0; pk < P; ++pk) {
        if (valid[c]) {
          kx[c][pk] = Pack8<T>::load_raw(kp + t * row_stride + pk * 8);
          vx[c][pk] = Pack8<T>::load_raw(vp + t * row_stride + pk * 8);
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

  // Merge the block's lane groups: each publishes its state, then threads combine per channel.
  publish_part<S::kParts, G, D, E>(s_acc, s_m, s_l, part, sl, acc, st);
  __syncthreads();

  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    SoftmaxState merged;
    const float o = merge_parts<S::kParts, G, D>(s_acc, s_m, s_l, h, d, &merged);
    const float lse = merged.lse();
    const int64_t row = static_cast<int64_t>(b) * p.num_q_heads + h0 + h;
    if (p.splits == 1) {
      store_scalar(static_cast<T*>(p.o) + row * D + d, o);
      if (p.lse && d == 0) p.lse[row] = lse;
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

struct Plan {
  int32_t splits;
  int64_t split_len;
  uint64_t part_o_bytes;  // workspace layout: part_o, then part_lse (256-byte aligned)
  uint64_t workspace_bytes;
};

uint64_t align256(uint64_t x) { return (x + 255) / 256 * 256; }

// Splits the KV until the grid covers the GPU a few times over, within the workspace given.
Plan make_plan(int32_t device, const AttentionDecodeArgs& a, uint64_t workspace_bytes) {
  const int32_t group = a.num_q_heads / std::max(1, a.num_kv_heads);
  const int64_t blocks = static_cast<int64_t>(a.batch) * a.num_q_heads / group_tile(group);
  const int64_t rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  const int64_t target = static_cast<int64_t>(multiprocessor_count(device)) * 4;
  int64_t splits = blocks >= target ? 1 : (target + blocks - 1) / blocks;
  splits = std::max<int64_t>(1, std::min(splits, (a.kv_len + kMinTokensPerSplit - 1) / kMinTokensPerSplit));
  auto bytes_for = [&](int64_t n) {
    return align256(static_cast<uint64_t>(n * rows * a.head_dim) * 4) + align256(static_cast<uint64_t>(n * rows) * 4);
  };
  while (splits > 1 && bytes_for(splits) > workspace_bytes) splits = std::min<int64_t>(splits - 1, workspace_bytes / std::max<uint64_t>(1, bytes_for(1)));
  if (splits < 2) splits = 1;
  Plan plan;
  plan.split_len = std::max<int64_t>(1, (a.kv_len + splits - 1) / splits);
  plan.splits = static_cast<int32_t>(a.kv_len == 0 ? 1 : (a.kv_len + plan.split_len - 1) / plan.split_len);
  plan.part_o_bytes = align256(static_cast<uint64_t>(plan.splits) * rows * a.head_dim * 4);
  plan.workspace_bytes = plan.splits > 1 ? bytes_for(plan.splits) : 0;
  return plan;
}

template <typename T, int D, int G>
void launch_typed(Stream* s, const DecodeParams& p, dim3 grid) {
  attention_decode_kernel<T, D, G><<<grid, kThreads, 0, s->stream>>>(p);
}

template <typename T, int D>
void launch_d(Stream* s, const DecodeParams& p, dim3 grid, int g) {
  switch (g) {
    case 8: launch_typed<T, D, 8>(s, p, grid); break;
    case 4: launch_typed<T, D, 4>(s, p, grid); break;
    case 2: launch_typed<T, D, 2>(s, p, grid); break;
    default: launch_typed<T, D, 1>(s, p, grid); break;
  }
}

template <typename T>
void launch_t(Stream* s, const DecodeParams& p, dim3 grid, int g, int d) {
  switch (d) {
    case 64: launch_d<T, 64>(s, p, grid, g); break;
    case 128: launch_d<T, 128>(s, p, grid, g); break;
    default: launch_d<T, 256>(s, p, grid, g); break;
  }
}

}  // namespace

uint64_t attention_decode_workspace_bytes(int32_t device, const AttentionDecodeArgs& shape) {
  AttentionDecodeArgs a = shape;
  if (a.num_kv_heads <= 0) a.num_kv_heads = 1;  // the split count does not depend on the grouping much
  return make_plan(device, a, UINT64_MAX).workspace_bytes;
}

void attention_decode(Stream* s, const AttentionDecodeArgs& a) {
  DeviceGuard guard(s->device);
  auto aligned16 = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; };
  KV_REQUIRE(aligned16(a.q) && aligned16(a.k) && aligned16(a.v),
             "q, k and v must be 16-byte aligned on CUDA (kv_buffer_init memory is; check sub-buffer offsets)");
  // The workspace needs 256-byte alignment for the vector loads of the merge.
  uint64_t usable = (reinterpret_cast<uintptr_t>(a.workspace) & 255u) ? 0 : a.workspace_bytes;
  Plan plan = make_plan(s->device, a, usable);
  const int32_t group = a.num_q_heads / a.num_kv_heads;
  const int g_tile = group_tile(group);
  DecodeParams p;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.o = a.o;
  p.lse = a.lse;
  p.part_o = plan.splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  p.part_lse = plan.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(a.workspace) + plan.part_o_bytes) : nullptr;
  p.num_q_heads = a.num_q_heads;
  p.num_kv_heads = a.num_kv_heads;
  p.group = group;
  p.group_tiles = group / g_tile;
  p.splits = plan.splits;
  p.kv_len = a.kv_len;
  p.split_len = plan.split_len;
  p.rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  p.scale_log2 = a.sm_scale * kLog2e;
  const int64_t grid_y = static_cast<int64_t>(a.batch) * a.num_kv_heads * p.group_tiles;
  if (grid_y > 65535) fail(KV_STATUS_UNSUPPORTED, "batch * num_q_heads / group tile = ", grid_y, " exceeds 65535 blocks");
  dim3 grid(plan.splits, static_cast<unsigned>(grid_y));
  if (a.dtype == KV_DTYPE_BF16) launch_t<uint16_t>(s, p, grid, g_tile, a.head_dim);
  else launch_t<float>(s, p, grid, g_tile, a.head_dim);
  KV_CUDA_CHECK_LAUNCH();
  if (plan.splits > 1) {
    MergeArgs m;
    m.in.count = plan.splits;
    m.in.o_base = p.part_o;
    m.in.lse_base = p.part_lse;
    m.in.o_state_stride = p.rows * a.head_dim;
    m.in.lse_state_stride = p.rows;
    m.in_dtype = KV_DTYPE_F32;
    m.out_dtype = a.dtype;
    m.o_out = a.o;
    m.lse_out = a.lse;
    m.rows = p.rows;
    m.head_dim = a.head_dim;
    merge_states(s, m);
  }
}

}  // namespace kv::cuda
