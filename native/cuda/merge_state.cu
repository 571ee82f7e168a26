// N-way attention-state merge. A thread owns 16 bytes (one vector) of one row's output: it
// reads the row's lse values (L1-resident, shared with the row's other threads), then streams
// the states' vectors, several loads in flight, accumulating exp(lse_i - m) * o_i in fp32.
// Empty states (lse = -inf) are skipped without reading their o. Memory-bound by design:
// the roofline is bytes read + written over the device copy bandwidth.
#include <cuda_runtime.h>


#include <algorithm>

#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

constexpr int kThreads = 256;

// One thread: elements [lane * VEC, lane * VEC + VEC) of one row (VEC = 8, or 1 for the generic path).
template <typename TIn, typename TOut, int VEC>
__global__ void __launch_bounds__(kThreads) merge_states_kernel(MergeSources in, TOut* o_out, float* lse_out,
                                                                int64_t rows, int32_t head_dim) {
  const int32_t lanes = head_dim / VEC;
  const int64_t items = rows * lanes;
  for (int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; item < items;
       item += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = item / lanes;
    const int32_t lane = static_cast<int32_t>(item - row * lanes);
    const int64_t offset = row * head_dim + static_cast<int64_t>(lane) * VEC;

    float m = kNegInf;
    bool nan = false;
    for (int32_t i = 0; i < in.count; ++i) {
      float l = in.lse(i)[row];
      nan |= isnan(l);
      m = fmaxf(m, l);
    }
    float acc[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[j] = 0.f;
    float sum = 0.f;
    if (!nan && m != kNegInf) {
      int32_t i = 0;
      // Four states per step: their loads are independent, so they overlap in flight.
      for (; i + 4 <= in.count; i += 4) {
        float w[4];
        float x[4][VEC];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          float l = in.lse(i + u)[row];
          w[u] = l == kNegInf ? 0.f : expf(l - m);
          if (w[u] != 0.f) {
            if constexpr (VEC > 1) {
              Pack8<TIn>::load(in.template o<TIn>(i + u) + offset, x[u]);
            } else {
              x[u][0] = load_scalar(in.template o<TIn>(i + u) + offset);
            }
          } else {
#pragma unroll
            for (int j = 0; j < VEC; ++j) x[u][j] = 0.f;
          }
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          sum += w[u];
#pragma unroll
          for (int j = 0; j < VEC; ++j) acc[j] = fmaf(w[u], x[u][j], acc[j]);
        }
      }
      for (; i < in.count; ++i) {
        float l = in.lse(i)[row];
        if (l == kNegInf) continue;
        float w = expf(l - m);
        float x[VEC];
        if constexpr (VEC > 1) {
          Pack8<TIn>::load(in.template o<TIn>(i) + offset, x);
        } else {
          x[0] = load_scalar(in.template o<TIn>(i) + offset);
        }
        sum += w;
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[j] = fmaf(w, x[j], acc[j]);
      }
    }
    float out[VEC];
    if (nan) {
#pragma unroll
      for (int j = 0; j < VEC; ++j) out[j] = kNaN;
    } else if (m == kNegInf) {
#pragma unroll
      for (int j = 0; j < VEC; ++j) out[j] = 0.f;
    } else {
      const float inv = 1.f / sum;
#pragma unroll
      for (int j = 0; j < VEC; ++j) out[j] = acc[j] * inv;
    }
    if constexpr (VEC > 1) {
      Pack8<TOut>::store(o_out + offset, out);
    } else {
      store_scalar(o_out + offset, out[0]);
    }
    if (lse_out && lane == 0) lse_out[row] = nan ? kNaN : (m == kNegInf ? m : m + logf(sum));
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <typename TIn, typename TOut>
void launch(Stream* s, const MergeArgs& a) {
  // Eight-element vectors need every pointer 16-byte aligned and rows of whole vectors.
  constexpr int kVec = 8;
  bool vec = a.head_dim % kVec == 0 && aligned16(a.o_out);
  for (int32_t i = 0; vec && i < a.in.count; ++i) vec = aligned16(a.in.template o<TIn>(i));
  if (!a.in.pair) vec = vec && (a.in.o_state_stride % kVec == 0);
  const int64_t lanes = vec ? a.head_dim / kVec : a.head_dim;
  const int64_t items = a.rows * lanes;
  const int64_t max_blocks = static_cast<int64_t>(multiprocessor_count(s->device)) * 16;
  const int blocks = static_cast<int>(std::min<int64_t>((items + kThreads - 1) / kThreads, max_blocks));
  if (vec) {
    merge_states_kernel<TIn, TOut, kVec><<<blocks, kThreads, 0, s->stream>>>(a.in, static_cast<TOut*>(a.o_out),
                                                                             a.lse_out, a.rows, a.head_dim);
  } else {
    merge_states_kernel<TIn, TOut, 1><<<blocks, kThreads, 0, s->stream>>>(a.in, static_cast<TOut*>(a.o_out),
                                                                          a.lse_out, a.rows, a.head_dim);
  }
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace

void merge_states(Stream* s, const MergeArgs& a) {
  DeviceGuard guard(s->device);
  const bool in_bf16 = a.in_dtype == KV_DTYPE_BF16, out_bf16 = a.out_dtype == KV_DTYPE_BF16;
  if (!in_bf16 && !out_bf16) launch<float, float>(s, a);
  else if (!in_bf16 && out_bf16) launch<float, uint16_t>(s, a);
  else if (in_bf16 && !out_bf16) launch<uint16_t, float>(s, a);
  else launch<uint16_t, uint16_t>(s, a);
}

}  // namespace kv::cuda
