// N-way attention-state merge, memory-bound by design: the roofline is bytes read + written
// over the device copy bandwidth. Empty states (lse = -inf) never enter the arithmetic.
//
// Fast paths (head_dim = 8 L with L = 8, 16 or 32: head dims 64, 128, 256): a segment of L
// lanes owns a row, each lane 8 channels, and the segment shares the per-state work (the
// weights exp(lse - m) are computed once per state and handed around with shuffles). Merges
// of up to 8 states run pipelined through shared memory; larger ones stream through registers.
// Generic path (any head_dim): a thread owns 8 (or 1) channels and computes its row's
// weights itself.
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

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

// cp.async (sm_80+): a global -> shared copy that holds no register while in flight.
// src_bytes = 0 writes zeros and reads nothing (a predicated-off copy).
__device__ __forceinline__ void copy_async_16(void* smem, const void* gmem, int src_bytes) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void copy_async_4(void* smem, const void* gmem, int src_bytes) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

constexpr unsigned kFullMask = 0xffffffffu;

// Max and NaN of the segment's lane values (segments of L lanes, L a power of two).
template <int L>
__device__ __forceinline__ void segment_max(float& m, bool& nan) {
#pragma unroll
  for (int off = L / 2; off > 0; off >>= 1) {
    m = fmaxf(m, __shfl_xor_sync(kFullMask, m, off));
    nan |= __shfl_xor_sync(kFullMask, static_cast<int>(nan), off) != 0;
  }
}

template <typename TOut>
__device__ __forceinline__ void write_row(TOut* o_out, float* lse_out, int64_t row, int64_t offset, int sub,
                                          const float* acc, float sum, float m, bool nan) {
  float out[8];
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = nan ? kNaN : acc[j] * inv;
  Pack8<TOut>::store(o_out + offset, out);
  if (lse_out && sub == 0) lse_out[row] = nan ? kNaN : (m == kNegInf ? m : m + logf(sum));
}

// Small merges (N <= PF <= 8): persistent blocks walk tiles of rows through a ring of kStages
// shared-memory stages filled by cp.async, so every thread keeps (kStages - 1) tiles of its
// vectors and lse values in flight without holding registers: what a memory-bound kernel
// needs to cover the memory latency. A segment of L lanes owns a row (lane sub: channels
// 8 sub .. 8 sub + 7; lane j < N also stages lse of state j). Each thread reads back only what
// it copied, so waiting on its own copy groups suffices (no barrier). Vectors of empty states
// are fetched before their weight is known but never enter the arithmetic (they may be NaN).
constexpr int kPipeThreads = 128;
constexpr int kStages = 4;

template <typename TIn, typename TOut, int L, int PF>
__global__ void __launch_bounds__(kPipeThreads) merge_states_pipelined_kernel(MergeSources in, TOut* o_out,
                                                                              float* lse_out, int64_t rows) {
  using Raw = typename Pack8<TIn>::Raw;
  constexpr int kPieces = sizeof(Raw) / 16;
  constexpr int kSlots = PF * kPieces + 1;  // + one 16-byte slot whose first word is the lse
  constexpr int kHeadDim = 8 * L;
  constexpr int kRowsPerTile = kPipeThreads / L;
  extern __shared__ uint4 staged[];  // [kStages][kSlots][kPipeThreads]
  auto slot = [&](int stage, int k) { return staged + (stage * kSlots + k) * kPipeThreads + threadIdx.x; };

  const int lane = threadIdx.x & 31, sub = lane % L, seg_base = lane - sub;
  const int32_t n = in.count;
  const int64_t tiles = (rows + kRowsPerTile - 1) / kRowsPerTile;
  auto row_of = [&](int64_t tile) { return tile * kRowsPerTile + threadIdx.x / L; };

  auto issue = [&](int64_t tile, int stage) {
    const int64_t row = row_of(tile);
    const bool active = tile < tiles && row < rows;
    const int64_t offset = active ? row * kHeadDim + sub * 8 : 0;
#pragma unroll
    for (int u = 0; u < PF; ++u) {
      const bool load = active && u < n;
      const char* src = reinterpret_cast<const char*>(in.template o<TIn>(load ? u : 0) + offset);
#pragma unroll
      for (int piece = 0; piece < kPieces; ++piece)
        copy_async_16(slot(stage, u * kPieces + piece), src + 16 * piece, load ? 16 : 0);
    }
    const bool lse_load = active && sub < n;
    copy_async_4(slot(stage, PF * kPieces), in.lse(lse_load ? sub : 0) + (lse_load ? row : 0), lse_load ? 4 : 0);
    copy_async_commit();  // one group per tile, empty or not, so the wait counts stay uniform
  };

  const int64_t first = blockIdx.x, step = gridDim.x;
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) issue(first + st * step, st);
  int stage = 0;
  for (int64_t tile = first; tile < tiles; tile += step) {
    issue(tile + (kStages - 1) * step, (stage + kStages - 1) % kStages);
    copy_async_wait<kStages - 1>();  // this tile's group is complete

    const int64_t row = row_of(tile);
    const bool active = row < rows;
    float l = active && sub < n ? *reinterpret_cast<const float*>(slot(stage, PF * kPieces)) : kNegInf;
    float m = l;
    bool nan = isnan(l);
    segment_max<L>(m, nan);
    const bool skip = nan || m == kNegInf;
    const float w_own = skip || l == kNegInf ? 0.f : expf(l - m);
    float acc[8], sum = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = 0.f;
#pragma unroll
    for (int u = 0; u < PF; ++u) {
      float w = __shfl_sync(kFullMask, w_own, seg_base + u);
      if (u >= n || w == 0.f) continue;
      Raw x;
#pragma unroll
      for (int piece = 0; piece < kPieces; ++piece) reinterpret_cast<uint4*>(&x)[piece] = *slot(stage, u * kPieces + piece);
      sum += w;
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[j] = fmaf(w, Pack8<TIn>::unpack(x, j), acc[j]);
    }
    if (active) write_row(o_out, lse_out, row, row * kHeadDim + sub * 8, sub, acc, sum, m, nan);
    stage = (stage + 1) % kStages;
  }
  copy_async_wait<0>();  // no copy may outlive the block
}

// Larger merges: a segment of L lanes per row, one row per thread; lane j loads the lse of
// states j, j + L, ...; the weights are computed once per chunk of L states and handed around
// with shuffles; vectors stream through registers, four prefetched, eight in flight after.
template <typename TIn, typename TOut, int L>
__global__ void __launch_bounds__(kThreads, sizeof(TIn) == 2 ? 3 : 2) merge_states_streaming_kernel(MergeSources in, TOut* o_out,
                                                                          float* lse_out, int64_t rows) {
  using Raw = typename Pack8<TIn>::Raw;
  constexpr int kHeadDim = 8 * L;
  const int lane = threadIdx.x & 31, sub = lane % L, seg_base = lane - sub;
  const int64_t row = (blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x) / L;
  const bool active = row < rows;  // inactive lanes still join the shuffles
  const int64_t offset = row * kHeadDim + sub * 8;
  const int32_t n = in.count;

  const float l_first = active && sub < n ? in.lse(sub)[row] : kNegInf;
  Raw first[4];
#pragma unroll
  for (int u = 0; u < 4; ++u) first[u] = active && u < n ? Pack8<TIn>::load_raw(in.template o<TIn>(u) + offset) : Raw{};

  float m = l_first;
  bool nan = isnan(l_first);
  for (int32_t base = L; base < n; base += L) {
    const float l = active && base + sub < n ? in.lse(base + sub)[row] : kNegInf;
    nan |= isnan(l);
    m = fmaxf(m, l);
  }
  segment_max<L>(m, nan);

  // Every lane runs every step (shuffles need the whole warp); NaN or all-empty rows weigh 0.
  const bool skip = nan || m == kNegInf;
  float acc[8], sum = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) acc[j] = 0.f;
  for (int32_t base = 0; base < n; base += L) {
    const float l = base == 0 ? l_first : (active && base + sub < n ? in.lse(base + sub)[row] : kNegInf);
    const float w_own = skip || l == kNegInf ? 0.f : expf(l - m);
    const int32_t in_chunk = min(L, n - base);
#pragma unroll 2
    for (int32_t u0 = 0; u0 < in_chunk; u0 += 4) {
      float w[4];
      Raw x[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        w[u] = __shfl_sync(kFullMask, w_own, seg_base + min(u0 + u, L - 1));
        if (u0 + u >= in_chunk) w[u] = 0.f;
        if (base == 0 && u0 == 0) x[u] = first[u];
        else x[u] = w[u] != 0.f ? Pack8<TIn>::load_raw(in.template o<TIn>(base + u0 + u) + offset) : Raw{};
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        if (w[u] == 0.f) continue;
        sum += w[u];
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[j] = fmaf(w[u], Pack8<TIn>::unpack(x[u], j), acc[j]);
      }
    }
  }
  if (active) write_row(o_out, lse_out, row, offset, sub, acc, sum, m, nan);
}

template <typename TIn, typename TOut, int L, int PF>
void launch_pipelined(Stream* s, const MergeArgs& a) {
  auto kernel = merge_states_pipelined_kernel<TIn, TOut, L, PF>;
  constexpr int kSlots = PF * static_cast<int>(sizeof(typename Pack8<TIn>::Raw) / 16) + 1;
  constexpr int kSmemBytes = kStages * kSlots * 16 * kPipeThreads;
  static_assert(kSmemBytes <= 80 * 1024, "stages must leave room for two blocks per multiprocessor");
  if (kSmemBytes > 48 * 1024)
    KV_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  int per_sm = 0;
  KV_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kPipeThreads, kSmemBytes));
  const int64_t tiles = (a.rows + kPipeThreads / L - 1) / (kPipeThreads / L);
  const int64_t blocks = std::min<int64_t>(tiles, static_cast<int64_t>(multiprocessor_count(s->device)) * std::max(1, per_sm));
  kernel<<<static_cast<unsigned>(blocks), kPipeThreads, kSmemBytes, s->stream>>>(a.in, static_cast<TOut*>(a.o_out),
                                                                               a.lse_out, a.rows);
  KV_CUDA_CHECK_LAUNCH();
}

template <typename TIn, typename TOut, int L>
void launch_streaming(Stream* s, const MergeArgs& a) {
  const int64_t blocks = (a.rows * L + kThreads - 1) / kThreads;
  merge_states_streaming_kernel<TIn, TOut, L><<<static_cast<unsigned>(blocks), kThreads, 0, s->stream>>>(
      a.in, static_cast<TOut*>(a.o_out), a.lse_out, a.rows);
  KV_CUDA_CHECK_LAUNCH();
}

template <typename TIn, typename TOut, int L>
void launch_segments(Stream* s, const MergeArgs& a) {
  if (a.in.count <= 2) {
    launch_pipelined<TIn, TOut, L, 2>(s, a);
  } else if (a.in.count <= 4) {
    launch_pipelined<TIn, TOut, L, 4>(s, a);
  } else if constexpr (sizeof(TIn) == 2) {
    // Eight bf16 states fit the stages; eight fp32 states would leave one block per SM.
    if (a.in.count <= 8) launch_pipelined<TIn, TOut, L, 8>(s, a);
    else launch_streaming<TIn, TOut, L>(s, a);
  } else {
    launch_streaming<TIn, TOut, L>(s, a);
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
  // The segment kernels cover the head dims of real models; bf16 -> fp32 merges never occur
  // inside Kvasir, so that pairing keeps the generic kernel and the build stays smaller.
  constexpr bool kSegmentPairing = !(std::is_same_v<TIn, uint16_t> && std::is_same_v<TOut, float>);
  if constexpr (kSegmentPairing) {
    if (vec && (a.head_dim == 64 || a.head_dim == 128 || a.head_dim == 256)) {
      if (a.head_dim == 64) launch_segments<TIn, TOut, 8>(s, a);
      else if (a.head_dim == 128) launch_segments<TIn, TOut, 16>(s, a);
      else launch_segments<TIn, TOut, 32>(s, a);
      return;
    }
  }
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
