// The attention-state merge on the device, in one place: the N-way merge kernel and the
// decode kernel's cross-warp and split-KV combination all use it (TECHNIQUES.md "shared
// vocabulary"). States are kept in base-2 form inside kernels (m in log2 units, l the sum of
// 2^(s - m)); kernels convert to the ABI's natural-log lse only when writing.
#pragma once

#include <cuda_runtime.h>

#include "cuda/cuda_common.cuh"


namespace kv::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Running (max, sum) of an online softmax in base 2; acc is kept by the caller and scaled
// by the factor returned from rescale_to().
struct SoftmaxState {
  float m = kNegInf;  // running max of the scores (log2 units)
  float l = 0.f;            // sum of 2^(score - m)

  // Moves the state to a new max and returns the factor the caller's accumulator needs.
  __device__ __forceinline__ float rescale_to(float m_new) {
    float factor = (m == kNegInf) ? 0.f : exp2f(m - m_new);
    l *= factor;
    m = m_new;
    return factor;
  }

  // Weights for merging states a and b: w_a, w_b such that merged acc = w_a acc_a + w_b acc_b.
  __device__ __forceinline__ static void merge_weights(const SoftmaxState& a, const SoftmaxState& b,
                                                       SoftmaxState* out, float* w_a, float* w_b) {
    float m = fmaxf(a.m, b.m);
    if (m == kNegInf) {
      *out = SoftmaxState{};
      *w_a = *w_b = 0.f;
      return;
    }
    *w_a = a.m == kNegInf ? 0.f : exp2f(a.m - m);
    *w_b = b.m == kNegInf ? 0.f : exp2f(b.m - m);
    out->m = m;
    out->l = a.l * *w_a + b.l * *w_b;
  }

  // Natural-log lse of the state; -inf for the empty state.
  __device__ __forceinline__ float lse() const { return l > 0.f ? (m + log2f(l)) * kLn2 : kNegInf; }
};

// A lane group's share of the block merge: its E channels (from channel sl * E) of each of the
// G heads' unnormalized accumulators, and (lane sl == 0) the heads' softmax states. The caller
// synchronizes the block before merge_parts reads them.
template <int PARTS, int G, int D, int E>
__device__ __forceinline__ void publish_part(float (&acc_out)[PARTS][G][D], float (&m_out)[PARTS][G],
                                             float (&l_out)[PARTS][G], int part, int sl, const float (&acc)[G][E],
                                             const SoftmaxState (&st)[G]) {
#pragma unroll
  for (int h = 0; h < G; ++h) {
#pragma unroll
    for (int e = 0; e < E; ++e) acc_out[part][h][sl * E + e] = acc[h][e];
    if (sl == 0) {
      m_out[part][h] = st[h].m;
      l_out[part][h] = st[h].l;
    }
  }
}

// Channel d of query head h, merged over the partial states a block's lane groups published
// (acc unnormalized, m and l their softmax states): returns the normalized output (0 for the
// empty state) and the merged state.
template <int PARTS, int G, int D>
__device__ __forceinline__ float merge_parts(const float (&acc)[PARTS][G][D], const float (&m)[PARTS][G],
                                             const float (&l)[PARTS][G], int h, int d, SoftmaxState* merged_out) {
  SoftmaxState merged;
  float o = 0.f;
  for (int pi = 0; pi < PARTS; ++pi) {
    SoftmaxState other{m[pi][h], l[pi][h]}, next;
    float w_acc, w_other;
    SoftmaxState::merge_weights(merged, other, &next, &w_acc, &w_other);
    o = o * w_acc + acc[pi][h][d] * w_other;
    merged = next;
  }
  *merged_out = merged;
  return merged.l > 0.f ? o / merged.l : 0.f;
}

// Split-KV combination of `count` normalized partial states (o_i, natural-log lse_i) of V
// consecutive channels of one row: o_i at o + i * o_stride (16-byte aligned for V = 4), lse_i
// at lse[i * lse_stride]. Each partial is the state (m = lse_i in log2 units, l = 1) folded in
// with merge_weights (the lse-weighted merge of merge_states, merge_state.cu); empty partials
// (lse = -inf) weigh nothing, a NaN lse makes the row NaN, all empty gives o = 0 and lse = -inf.
// The partials were written by other blocks of the running kernel and published by
// __threadfence + an arrival counter, so they are read with ld.global.cg (L2, never a stale
// L1 line). Loads go out kBatch splits at a time to overlap their latency.
template <int V>
__device__ __forceinline__ void merge_split_partials(const float* o, int64_t o_stride, const float* lse,
                                                     int64_t lse_stride, int32_t count, float (&out)[V],
                                                     float* lse_out) {
  static_assert(V == 1 || V == 4, "one channel or a float4");
  constexpr int kBatch = 8;
  SoftmaxState merged;
  float acc[V];
#pragma unroll
  for (int j = 0; j < V; ++j) acc[j] = 0.f;
  bool nan = false;
  for (int32_t i0 = 0; i0 < count; i0 += kBatch) {
    float l[kBatch], x[kBatch][V];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int32_t i = i0 + u;
      l[u] = i < count ? __ldcg(lse + i * lse_stride) : kNegInf;
      if constexpr (V == 4) {
        const float4 v4 = i < count ? __ldcg(reinterpret_cast<const float4*>(o + i * o_stride))
                                    : make_float4(0.f, 0.f, 0.f, 0.f);
        x[u][0] = v4.x;
        x[u][1] = v4.y;
        x[u][2] = v4.z;
        x[u][3] = v4.w;
      } else {
        x[u][0] = i < count ? __ldcg(o + i * o_stride) : 0.f;
      }
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      nan |= isnan(l[u]);
      if (l[u] == kNegInf || isnan(l[u])) continue;
      const SoftmaxState part{l[u] * kLog2e, 1.f};
      SoftmaxState next;
      float w_acc, w_part;
      SoftmaxState::merge_weights(merged, part, &next, &w_acc, &w_part);
#pragma unroll
      for (int j = 0; j < V; ++j) acc[j] = acc[j] * w_acc + x[u][j] * w_part;
      merged = next;
    }
  }
  const float inv = merged.l > 0.f ? 1.f / merged.l : 0.f;
#pragma unroll
  for (int j = 0; j < V; ++j) out[j] = nan ? kNaN : acc[j] * inv;
  *lse_out = nan ? kNaN : merged.lse();
}

// Split-KV epilogue: every thread of the block calls it, last, after writing its share of the
// block's partial state (rows [row0, row0 + n_rows) of split blockIdx.x: normalized fp32 o at
// part_o[(split * rows + row) * D], natural-log lse at part_lse[split * rows + row]). The last
// of the `splits` blocks counted by *arrival (the block row's counter, zero on entry) merges
// every split's partials of those rows into o (dtype T) and lse (may be null), and resets the
// counter to zero for the stream's next launch; the others return. So split-KV needs no second
// (merge) launch.
template <typename T, int D>
__device__ __forceinline__ void merge_split_rows_if_last(uint32_t* arrival, int32_t splits, const float* part_o,
                                                         const float* part_lse, int64_t rows, int64_t row0,
                                                         int n_rows, T* o, float* lse) {
  __shared__ int s_last;
  __threadfence();  // release: this thread's partial writes are visible device-wide ...
  __syncthreads();  // ... before thread 0 counts the block in
  if (threadIdx.x == 0) {
    const uint32_t arrived = atomicAdd(arrival, 1u) + 1u;
    const int last = arrived == static_cast<uint32_t>(splits) ? 1 : 0;
    if (last) *arrival = 0u;  // every split is in: no block of this launch touches it again
    __threadfence();          // acquire: the partials are read after the arrivals
    s_last = last;
  }
  __syncthreads();
  if (!s_last) return;
  constexpr int kVec = 4;  // channels per item: float4 loads of the partials
  static_assert(D % kVec == 0, "whole float4 items");
  const int items = n_rows * (D / kVec);
  for (int it = threadIdx.x; it < items; it += blockDim.x) {
    const int h = it / (D / kVec), d = (it % (D / kVec)) * kVec;
    const int64_t row = row0 + h;
    float out[kVec], row_lse;
    merge_split_partials<kVec>(part_o + row * D + d, rows * D, part_lse + row, rows, splits, out, &row_lse);
    T* dst = o + row * D + d;
#pragma unroll
    for (int j = 0; j < kVec; ++j) store_scalar(dst + j, out[j]);
    if (lse && d == 0) lse[row] = row_lse;
  }
}

}  // namespace kv::cuda
