// One forward step of the model on CUDA for a batch of sequences, then sampling on the device.
//
// Activations are fp32 [tokens][features]; matrix products go through cuBLAS (bf16 or fp32
// inputs, fp32 accumulation, fp32 outputs; the residual stream is accumulated in place with
// beta = 1). Own kernels do the rest: embedding, RMSNorm, bias + q/k norm + RoPE + KV append,
// causal attention over each sequence's cache slot, SwiGLU, and the sampler. The host builds
// the step plan once, copies it to the device in one transfer and reads back the sampled tokens.
//
// Paged caches (kv_paged_cache_init) run the same step with the paged KV ops of the kernel
// library in place of the slot attention: K/V rows go into pages, the pages written get their
// key summaries refreshed, decode tokens attend through kv::cuda::paged_decode (after Quest's
// page selection when the policy asks), prefill chunks through kv::cuda::paged_prefill. The
// plan orders the sequences decode tokens first, so both ops see contiguous q rows; sampling
// and logits keep the caller's order.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/paged_quest_order.h"
#include "cuda/attention_prefill.cuh"
#include "cuda/attention_state.cuh"
#include "cuda/cublas_loader.h"
#include "cuda/cuda_common.cuh"
#include "cuda/paged_decode.h"
#include "cuda/paged_prefill.h"
#include "cuda/paged_quest.h"
#include "cuda/quant_kv.h"
#include "model/model_cuda.h"
#include "model/philox.h"

namespace kv::model::cuda {

using kv::cuda::DeviceGuard;
using kv::cuda::kNegInf;
using kv::cuda::SoftmaxState;
using kv::cuda::throw_cuda;
namespace blas = kv::cuda::blas;

// The stages of a step, as the profile names them.
enum Stage : int {
  kStageEmbed, kStageAttnNorm, kStageQkv, kStageQkvPost, kStageAttention, kStageO, kStageMlpNorm, kStageGateUp,
  kStageSilu, kStageDown, kStageFinalNorm, kStageLmHead, kStageSample, kStageCount
};
constexpr const char* kStageNames[kStageCount] = {"embed",  "attn_norm", "qkv_proj",   "qkv_post", "attention",
                                                  "o_proj", "mlp_norm",  "gate_up",    "silu_mul", "down_proj",
                                                  "final_norm", "lm_head", "sample"};

// Per step kind (0 decode: one new token per sequence; 1 prefill: any other step).
struct ProfileTotals {
  int64_t calls[kStageCount] = {};
  double ms[kStageCount] = {};
  double launch_ms[kStageCount] = {};  // host time spent enqueueing the stage
  int64_t steps = 0;
  double host_ms = 0;
};

// A decode step's captured graph: keyed by the cache, the batch shape and what changes the
// launches (the repetition-penalty sampler's shared memory, GEMV or cuBLAS projections).
struct GraphKey {
  uint64_t cache;
  int32_t seqs;
  bool sampled, penalty, gemv;
  int32_t table_cols;  // paged: the plan's page-table width (a power of two); 0 for slot caches
  int32_t selection, select_k;
  bool operator<(const GraphKey& o) const {
    return std::tie(cache, seqs, sampled, penalty, gemv, table_cols, selection, select_k) <
           std::tie(o.cache, o.seqs, o.sampled, o.penalty, o.gemv, o.table_cols, o.selection, o.select_k);
  }
};
struct GraphEntry {
  int seen = 0;                      // steps of this shape so far (the first runs eagerly)
  cudaGraphExec_t exec = nullptr;
};

// A cuBLASLt matrix product of one shape: its descriptors and the algorithm chosen once.
struct LtKey {  // beta is a call argument, so accumulating and plain products share a plan
  int64_t n, rows, k;
  int type;
  bool operator<(const LtKey& o) const { return std::tie(n, rows, k, type) < std::tie(o.n, o.rows, o.k, o.type); }
};
struct LtPlan {
  void *desc = nullptr, *a = nullptr, *b = nullptr, *c = nullptr;
  blas::LtAlgo algo{};
  bool ok = false;  // false: no algorithm found; cublasGemmEx handles the shape
};

struct Context {
  int32_t device = 0;
  int sms = 1;  // multiprocessors of the device
  cudaStream_t stream = nullptr;
  blas::Handle blas = nullptr;
  blas::Handle lt = nullptr;  // cuBLASLt (null when absent)
  std::map<LtKey, LtPlan> lt_plans;
  void* blas_workspace = nullptr;  // cuBLAS's workspace, set once so graph capture never allocates
  void* work = nullptr;  // device workspace of a step, grown on demand
  size_t work_bytes = 0;
  void* pinned = nullptr;  // host staging of the plan and the results
  size_t pinned_bytes = 0;
  std::map<GraphKey, GraphEntry> graphs;
  int64_t graph_launches = 0, graph_captures = 0;
  bool profiling = false;
  std::vector<cudaEvent_t> events;  // reused across profiled steps
  ProfileTotals totals[2];
  // The paged KV ops take a kernel-library stream: the model's stream plus an error record
  // (pinned, mapped) where their kernels report bad indices. The host checked every index, so
  // a record there is a bug; the step reports it.
  DeviceErrorRecord* error_host = nullptr;
  uint32_t* arrivals = nullptr;  // the ops stream's arrival counters (see kv::cuda::Stream)
  kv::cuda::Stream ops{};
  // Quantized caches: one layer's bf16 copy of the prefill sequences' whole KV (grown on demand;
  // prefill steps only, which never run as graphs).
  void* scratch = nullptr;
  size_t scratch_bytes = 0;
};

constexpr size_t kBlasWorkspaceBytes = 32u << 20;

namespace {

constexpr int kThreads = 256;

// ----------------------------------------------------------------------------- helpers

template <typename T>
__device__ __forceinline__ float load(const T* p, int64_t i);
template <>
__device__ __forceinline__ float load<float>(const float* p, int64_t i) { return p[i]; }
template <>
__device__ __forceinline__ float load<uint16_t>(const uint16_t* p, int64_t i) {
  return kv::cuda::bf16_bits_to_float(p[i]);
}
__device__ __forceinline__ void store(float* p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void store(uint16_t* p, int64_t i, float x) { p[i] = kv::cuda::float_to_bf16_bits(x); }

// Sum over the block, in a fixed order (warp trees, then warp 0 over the warps' sums).
template <typename V>
__device__ V block_sum(V v) {
  __shared__ V partial[32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  V total = lane < warps ? partial[lane] : V(0);
  for (int off = 16; off > 0; off >>= 1) total += __shfl_xor_sync(0xffffffffu, total, off);
  return total;
}

__device__ float block_max(float v) {
  __shared__ float partial[32];
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  float m = lane < warps ? partial[lane] : kNegInf;
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  return m;
}

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

// Programmatic dependent launch (sm_90): a step's kernels are launched so that the next one's
// blocks may start while this one drains. Each kernel first lets its dependents launch, then
// waits until its predecessor has completed and flushed (what it reads is then visible; the
// chain makes everything earlier complete too). Without PDL both are no-ops.
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Launches a kernel of the step, with programmatic stream serialization when pdl is set.
template <typename... KernelArgs, typename... Args>
void launch_kernel(bool pdl, void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = pdl ? 1 : 0;
  KV_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

// ----------------------------------------------------------------------------- GEMV

// out[t][n] (+)= sum_k a[t][k] w[n][k] for a few rows t of bf16 activations. Decode is bound by
// reading the weights once: each warp streams kGemvRowsPerWarp weight rows with 16-byte loads
// that bypass L1 and applies every loaded chunk to all T activation rows (hot in L1), fp32
// accumulation, one warp reduction at the end. k is a multiple of 8 (16-byte chunks).
constexpr int kGemvRowsPerWarp = 2;
constexpr int kGemvThreads = 256;

__device__ __forceinline__ uint4 load_streaming(const uint16_t* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

__device__ __forceinline__ float dot8(const uint4& w, const uint4& a, float acc) {
  using Pack = kv::cuda::Pack8<uint16_t>;
#pragma unroll
  for (int j = 0; j < 8; ++j) acc = fmaf(Pack::unpack(w, j), Pack::unpack(a, j), acc);
  return acc;
}

// Each warp computes one unit of R = 2 weight rows: rows (2u, 2u + 1), or with SWIGLU the
// gate row u and the up row u + n_act, whose results become act[t][u] = silu(g) * u in bf16
// (the SwiGLU fused into the gate/up projection's epilogue). Small matrices split k over
// ksplit warps of a block (interleaved 256-element chunks), summed in a fixed order.
template <int T, bool SWIGLU>
__global__ void __launch_bounds__(kGemvThreads) gemv_bf16_kernel(const uint16_t* __restrict__ a,
                                                                 const uint16_t* __restrict__ w, void* out, int k,
                                                                 int n, int accumulate, int ksplit) {
  constexpr int R = kGemvRowsPerWarp, WARPS = kGemvThreads / 32;
  __shared__ float partial[WARPS][R][T];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int slice = warp % ksplit, unit_in_block = warp / ksplit;
  const int64_t unit = static_cast<int64_t>(blockIdx.x) * (WARPS / ksplit) + unit_in_block;
  const int64_t units = SWIGLU ? n / 2 : (n + 1) / 2;
  const int64_t clamped = unit < units ? unit : units - 1;
  const uint16_t* rows[R];
  if (SWIGLU) {
    rows[0] = w + clamped * k;
    rows[1] = w + (clamped + units) * k;
  } else {
    rows[0] = w + 2 * clamped * k;
    rows[1] = w + (2 * clamped + 1 < n ? 2 * clamped + 1 : 2 * clamped) * k;  // a last odd row repeats
  }
  // The weights do not depend on the previous kernel: ask L2 for the first chunks while it drains.
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int k0 = slice * 256 + lane * 8 + j * ksplit * 256;
    if (k0 < k && (lane & 7) == 0)
#pragma unroll
      for (int r = 0; r < R; ++r) asm volatile("prefetch.global.L2 [%0];" ::"l"(rows[r] + k0));
  }
  pdl_begin();
  float v[R][T];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) v[r][t] = 0.f;
#pragma unroll 4
  for (int k0 = slice * 256 + lane * 8; k0 < k; k0 += ksplit * 256) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = load_streaming(rows[r] + k0);
#pragma unroll
    for (int t = 0; t < T; ++t) {
      const uint4 av = __ldg(reinterpret_cast<const uint4*>(a + static_cast<int64_t>(t) * k + k0));
#pragma unroll
      for (int r = 0; r < R; ++r) v[r][t] = dot8(wv[r], av, v[r][t]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t)
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) v[r][t] += __shfl_xor_sync(0xffffffffu, v[r][t], off);
  if (ksplit > 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) partial[warp][r][t] = v[r][t];
    __syncthreads();
    if (slice != 0) return;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < T; ++t) {
        float sum = 0.f;
        for (int i = 0; i < ksplit; ++i) sum += partial[warp + i][r][t];
        v[r][t] = sum;
      }
  }
  if (unit >= units) return;
#pragma unroll
  for (int t = 0; t < T; ++t) {
    if (lane != t) continue;
    if (SWIGLU) {
      const float g = v[0][t], u = v[1][t];
      static_cast<uint16_t*>(out)[t * units + unit] = kv::cuda::float_to_bf16_bits(g / (1.f + expf(-g)) * u);
    } else {
      float* o = static_cast<float*>(out) + static_cast<int64_t>(t) * n + 2 * unit;
      o[0] = accumulate ? o[0] + v[0][t] : v[0][t];
      if (2 * unit + 1 < n) o[1] = accumulate ? o[1] + v[1][t] : v[1][t];
    }
  }
}

// The k split: the largest of 1, 2, 4, 8 whose warps still fit one wave of the GPU (a second,
// partial wave would leave most multiprocessors idle at the end), keeping >= 512 elements a slice.
int gemv_ksplit(int64_t units, int k, int64_t wave_warps) {
  int ks = 1;
  while (ks < 8 && units * ks * 2 <= wave_warps && k / (2 * ks) >= 512) ks *= 2;
  return ks;
}

template <int T>
void launch_gemv_t(const uint16_t* a, const uint16_t* w, void* out, int k, int n, bool accumulate, bool swiglu,
                   bool pdl, int sms, cudaStream_t st) {
  auto* kernel_plain = gemv_bf16_kernel<T, false>;
  auto* kernel_swiglu = gemv_bf16_kernel<T, true>;
  static const int blocks_per_sm = [&] {  // resident blocks of this instance (registers decide)
    int b = 0;
    KV_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel_plain, kGemvThreads, 0));
    return std::max(b, 1);
  }();
  const int64_t units = swiglu ? n / 2 : (n + 1) / 2;
  const int ks = gemv_ksplit(units, k, static_cast<int64_t>(sms) * blocks_per_sm * (kGemvThreads / 32));
  const int64_t units_per_block = (kGemvThreads / 32) / ks;
  const unsigned blocks = static_cast<unsigned>((units + units_per_block - 1) / units_per_block);
  if (swiglu)
    launch_kernel(pdl, kernel_swiglu, blocks, kGemvThreads, 0, st, a, w, out, k, n, 0, ks);
  else
    launch_kernel(pdl, kernel_plain, blocks, kGemvThreads, 0, st, a, w, out, k, n, accumulate ? 1 : 0, ks);
}

// out = a w^T (fp32, += with accumulate) or, with swiglu, act = silu(gate) * up in bf16 where
// w holds the gate rows then the up rows (n = 2 * intermediate).
void launch_gemv(int rows, const uint16_t* a, const uint16_t* w, void* out, int k, int n, bool accumulate,
                 bool swiglu, bool pdl, int sms, cudaStream_t st) {
  switch (rows) {
#define KV_GEMV_CASE(R) \
  case R:               \
    launch_gemv_t<R>(a, w, out, k, n, accumulate, swiglu, pdl, sms, st); \
    break;
    KV_GEMV_CASE(1) KV_GEMV_CASE(2) KV_GEMV_CASE(3) KV_GEMV_CASE(4) KV_GEMV_CASE(5) KV_GEMV_CASE(6)
    KV_GEMV_CASE(7) KV_GEMV_CASE(8) KV_GEMV_CASE(9) KV_GEMV_CASE(10) KV_GEMV_CASE(11) KV_GEMV_CASE(12)
    KV_GEMV_CASE(13) KV_GEMV_CASE(14) KV_GEMV_CASE(15) KV_GEMV_CASE(16)
#undef KV_GEMV_CASE
    default:
      throw kv::Error(KV_STATUS_INTERNAL, "GEMV for " + std::to_string(rows) + " rows");
  }
  KV_CUDA_CHECK_LAUNCH();
}

// Events after each stage of a profiled step (nothing when off).
struct StageMarks {
  Context* c;
  bool on;
  std::vector<std::pair<int, cudaEvent_t>> marks;
  std::vector<std::chrono::steady_clock::time_point> host;  // when each mark was made
  void mark(int stage) {
    if (!on) return;
    host.push_back(std::chrono::steady_clock::now());
    if (marks.size() == c->events.size()) {
      cudaEvent_t e;
      KV_CUDA_CHECK(cudaEventCreate(&e));
      c->events.push_back(e);
    }
    cudaEvent_t e = c->events[marks.size()];
    KV_CUDA_CHECK(cudaEventRecord(e, c->stream));
    marks.emplace_back(stage, e);
  }
};

// ----------------------------------------------------------------------------- kernels

template <typename TW>
__global__ void embed_kernel(const int32_t* tokens, const TW* embed, float* x, int h) {
  pdl_begin();
  const int64_t t = blockIdx.x;
  const TW* row = embed + static_cast<int64_t>(tokens[t]) * h;
  for (int i = threadIdx.x; i < h; i += blockDim.x) x[t * h + i] = load(row, i);
}

// out[r] = x[rows ? rows[r] : r] * rsqrt(mean(x^2) + eps) * w, as transformers' LlamaRMSNorm;
// 16-byte loads when h is a multiple of 4.
template <typename TOut>
__global__ void rms_norm_kernel(const float* x, const int32_t* rows, const float* w, TOut* out, int h, float eps) {
  pdl_begin();
  const int64_t r = blockIdx.x;
  const float* xr = x + static_cast<int64_t>(rows ? rows[r] : r) * h;
  TOut* o = out + r * h;
  if ((h & 3) == 0) {
    const float4* x4 = reinterpret_cast<const float4*>(xr);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    float ss = 0.f;
    for (int i = threadIdx.x; i < h / 4; i += blockDim.x) {
      const float4 v = x4[i];
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    const float inv = rsqrtf(block_sum(ss) / h + eps);
    for (int i = threadIdx.x; i < h / 4; i += blockDim.x) {
      const float4 v = x4[i], g = w4[i];
      store(o, 4 * i, v.x * inv * g.x);
      store(o, 4 * i + 1, v.y * inv * g.y);
      store(o, 4 * i + 2, v.z * inv * g.z);
      store(o, 4 * i + 3, v.w * inv * g.w);
    }
    return;
  }
  float ss = 0.f;
  for (int i = threadIdx.x; i < h; i += blockDim.x) ss += xr[i] * xr[i];
  const float inv = rsqrtf(block_sum(ss) / h + eps);
  for (int i = threadIdx.x; i < h; i += blockDim.x) store(o, i, xr[i] * inv * w[i]);
}

// Per (token, head): bias; for q and k heads the per-head RMSNorm (Qwen3) and RoPE; k and v
// heads go into the cache: KV head h of token t at cache_row[t] * kv_row_stride + h *
// kv_head_stride (slot caches: row = slot * capacity + position, strides kv_heads * d and d;
// head-major pages: row = page * kv_heads * P + position % P, strides d and P * d). A block
// holds blockDim.y heads of a token, blockDim.x = d / 2 threads each (one per rotation pair).
// q_out (may be null): the rotated q heads also in the cache dtype, [token][hq * d], for the
// tensor-core prefill attention.
template <typename TKV>
__global__ void qkv_post_kernel(float* qkv, const float* bias, const float* q_norm, const float* k_norm,
                                const float* inv_freq, const int32_t* pos, const int32_t* cache_row, TKV* k_layer,
                                TKV* v_layer, TKV* q_out, int hq, int hkv, int d, int qkv_width, int qk_norm,
                                float eps, int64_t kv_row_stride, int64_t kv_head_stride) {
  pdl_begin();
  __shared__ float partial[8][4];
  const int64_t t = blockIdx.x;
  const int hd = blockIdx.y * blockDim.y + threadIdx.y;
  const int half = d / 2, i = threadIdx.x;
  const bool active = hd < hq + 2 * hkv;
  float* row = qkv + t * qkv_width + static_cast<int64_t>(hd) * d;
  float x1 = 0.f, x2 = 0.f;
  if (active) {
    x1 = row[i];
    x2 = row[i + half];
    if (bias) {
      x1 += bias[hd * d + i];
      x2 += bias[hd * d + i + half];
    }
  }
  if (qk_norm) {  // uniform over the launch: every thread reaches the barrier
    float ss = x1 * x1 + x2 * x2;
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if ((i & 31) == 0) partial[threadIdx.y][i >> 5] = ss;
    __syncthreads();
    float total = 0.f;
    for (int wi = 0; wi < (half + 31) / 32; ++wi) total += partial[threadIdx.y][wi];
    if (active && hd < hq + hkv) {
      const float inv = rsqrtf(total / d + eps);
      const float* w = hd < hq ? q_norm : k_norm;
      x1 = x1 * inv * w[i];
      x2 = x2 * inv * w[i + half];
    }
  }
  if (!active) return;
  if (hd >= hq + hkv) {  // a v head: straight into the cache
    TKV* dst = v_layer + static_cast<int64_t>(cache_row[t]) * kv_row_stride + (hd - hq - hkv) * kv_head_stride;
    store(dst, i, x1);
    store(dst, i + half, x2);
    return;
  }
  // angle = position * inv_freq in fp32 (one rounding), accurate sin and cos of it.
  const float angle = static_cast<float>(pos[t]) * inv_freq[i];
  float sn, cs;
  sincosf(angle, &sn, &cs);
  const float y1 = x1 * cs - x2 * sn, y2 = x2 * cs + x1 * sn;
  if (hd < hq) {
    row[i] = y1;
    row[i + half] = y2;
    if (q_out) {
      TKV* dst = q_out + t * static_cast<int64_t>(hq) * d + static_cast<int64_t>(hd) * d;
      store(dst, i, y1);
      store(dst, i + half, y2);
    }
  } else {
    TKV* dst = k_layer + static_cast<int64_t>(cache_row[t]) * kv_row_stride + (hd - hq) * kv_head_stride;
    store(dst, i, y1);
    store(dst, i + half, y2);
  }
}

constexpr int kAttnWarps = 4;
constexpr int kAttnThreads = kAttnWarps * 32;

// Causal attention of token t over its slot's positions [0, pos[t]] for a tile of G query
// heads of one KV head: groups of L lanes share a position (8 channels a lane), online
// softmax in base 2, the block's lane groups merged with the state merge. With splits > 1
// (decode: too few tokens to fill the GPU) block z takes the z-th of `splits` equal ranges of
// the positions and writes its normalized output and base-2 lse to part_o / part_lse, which
// combine_splits_kernel merges; with splits = 1 it writes the output directly.
template <typename TKV, typename TOut, int D, int G>
__global__ void __launch_bounds__(kAttnThreads) attention_kernel(const float* qkv, int qkv_width, const TKV* k_layer,
                                                                 const TKV* v_layer, const int32_t* slot_row,
                                                                 const int32_t* pos, TOut* out, int hq, int hkv,
                                                                 int group, int group_tiles, float scale_log2,
                                                                 int splits, float* part_o, float* part_lse) {
  pdl_begin();
  constexpr int L = D / 8, E = 8, TPW = 32 / L, PARTS = kAttnWarps * TPW;
  static_assert(L <= 32, "head_dim <= 256");
  __shared__ float s_acc[PARTS][G][D];
  __shared__ float s_m[PARTS][G];
  __shared__ float s_l[PARTS][G];
  const int64_t t = blockIdx.x;
  const int tile = blockIdx.y % group_tiles, kvh = blockIdx.y / group_tiles, split = blockIdx.z;
  const int h0 = kvh * group + tile * G;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, tg = lane / L, sl = lane % L;
  const int part = warp * TPW + tg;

  float q[G][E], acc[G][E];
  SoftmaxState st[G];
  const float* qp = qkv + t * qkv_width + static_cast<int64_t>(h0) * D + sl * E;
#pragma unroll
  for (int h = 0; h < G; ++h)
#pragma unroll
    for (int e = 0; e < E; ++e) {
      q[h][e] = qp[h * D + e] * scale_log2;
      acc[h][e] = 0.f;
    }
  const int64_t kv_width = static_cast<int64_t>(hkv) * D;
  const int64_t base = static_cast<int64_t>(slot_row[t]) * kv_width + static_cast<int64_t>(kvh) * D + sl * E;
  const int64_t len = pos[t] + 1;
  // This block's range: equal shares in multiples of PARTS positions.
  // Shares of at least 64 positions: for short contexts the later splits are empty (they
  // write the empty state, which the combination ignores).
  const int64_t even_share = ((len + splits - 1) / splits + PARTS - 1) / PARTS * PARTS;
  const int64_t share = even_share > 64 ? even_share : 64;
  const int64_t begin = split * share, end = min(len, begin + share);
  // kUnroll positions a lane group in flight: their K and V loads are issued together, their
  // scores computed, then one rescale of the running state per chunk.
  constexpr int kUnroll = 4;
  for (int64_t p0 = begin; p0 < end; p0 += kUnroll * PARTS) {
    using Pack = kv::cuda::Pack8<TKV>;  // 8 cache elements a lane, kept packed until used
    typename Pack::Raw kr[kUnroll], vr[kUnroll];
    bool valid[kUnroll];
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) {
      const int64_t p = p0 + j * PARTS + warp * TPW + tg;
      valid[j] = p < end;
      if (valid[j]) {
        kr[j] = Pack::load_raw(k_layer + base + p * kv_width);
        vr[j] = Pack::load_raw(v_layer + base + p * kv_width);
      }
    }
    float score[kUnroll][G];
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) {
      float kx[E];
#pragma unroll
      for (int e = 0; e < E; ++e) kx[e] = valid[j] ? Pack::unpack(kr[j], e) : 0.f;
#pragma unroll
      for (int h = 0; h < G; ++h) {
        float dot = 0.f;
#pragma unroll
        for (int e = 0; e < E; ++e) dot = fmaf(q[h][e], kx[e], dot);
#pragma unroll
        for (int off = L / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        score[j][h] = valid[j] ? dot : kNegInf;
      }
    }
    float vx[kUnroll][E];
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) {
#pragma unroll
      for (int e = 0; e < E; ++e) vx[j][e] = valid[j] ? Pack::unpack(vr[j], e) : 0.f;
    }
#pragma unroll
    for (int h = 0; h < G; ++h) {
      float m_new = st[h].m;
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) m_new = fmaxf(m_new, score[j][h]);
      if (m_new == kNegInf) continue;  // nothing valid here yet
      const float factor = st[h].rescale_to(m_new);
#pragma unroll
      for (int e = 0; e < E; ++e) acc[h][e] *= factor;
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const float pc = valid[j] ? exp2f(score[j][h] - m_new) : 0.f;
        st[h].l += pc;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[h][e] = fmaf(pc, vx[j][e], acc[h][e]);
      }
    }
  }
  kv::cuda::publish_part<PARTS, G, D, E>(s_acc, s_m, s_l, part, sl, acc, st);
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += kAttnThreads) {
    const int h = idx / D, d = idx % D;
    SoftmaxState merged;
    const float o = kv::cuda::merge_parts<PARTS, G, D>(s_acc, s_m, s_l, h, d, &merged);
    const int64_t row = t * hq + h0 + h;
    if (splits == 1) {
      store(out, row * D + d, o);
    } else {
      part_o[(row * splits + split) * D + d] = o;
      if (d == 0) part_lse[row * splits + split] = merged.l > 0.f ? merged.m + log2f(merged.l) : kNegInf;
    }
  }
}

// out[row] = the splits' outputs weighted by 2^(lse_i - max lse) (an N-way state merge); one
// block per (token, query head). Warp 0 turns the <= 64 lse into weights at once; then every
// thread sums its channels over the splits with independent loads.
template <typename TOut>
__global__ void combine_splits_kernel(const float* part_o, const float* part_lse, TOut* out, int splits, int d) {
  pdl_begin();
  __shared__ float weight[64];
  __shared__ float inv_total;
  const int64_t row = blockIdx.x;
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    const float a = lane < splits ? part_lse[row * splits + lane] : kNegInf;
    const float b = lane + 32 < splits ? part_lse[row * splits + lane + 32] : kNegInf;
    float m = fmaxf(a, b);
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    const float wa = a == kNegInf ? 0.f : exp2f(a - m), wb = b == kNegInf ? 0.f : exp2f(b - m);
    weight[lane] = wa;
    weight[lane + 32] = wb;
    float total = wa + wb;
    for (int off = 16; off > 0; off >>= 1) total += __shfl_xor_sync(0xffffffffu, total, off);
    if (lane == 0) inv_total = total > 0.f ? 1.f / total : 0.f;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float num = 0.f;
#pragma unroll 8
    for (int i = 0; i < splits; ++i) num = fmaf(weight[i], part_o[(row * splits + i) * d + c], num);
    store(out, row * d + c, num * inv_total);
  }
}

// act = silu(gate) * up, 4 elements a thread when the width allows 16-byte loads.
template <typename TOut>
__global__ void silu_mul_kernel(const float* gate_up, TOut* act, int64_t tokens, int inter) {
  pdl_begin();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if ((inter & 3) == 0) {
    const int quads = inter / 4;
    const int64_t n = tokens * quads;
    for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n; idx += stride) {
      const int64_t t = idx / quads, i = (idx - t * quads) * 4;
      const float4 g = *reinterpret_cast<const float4*>(gate_up + t * 2 * inter + i);
      const float4 u = *reinterpret_cast<const float4*>(gate_up + t * 2 * inter + inter + i);
      TOut* o = act + t * inter + i;
      store(o, 0, g.x / (1.f + expf(-g.x)) * u.x);
      store(o, 1, g.y / (1.f + expf(-g.y)) * u.y);
      store(o, 2, g.z / (1.f + expf(-g.z)) * u.z);
      store(o, 3, g.w / (1.f + expf(-g.w)) * u.w);
    }
    return;
  }
  const int64_t n = tokens * inter;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n; idx += stride) {
    const int64_t t = idx / inter, i = idx - t * inter;
    const float g = gate_up[t * 2 * inter + i], u = gate_up[t * 2 * inter + inter + i];
    store(act, idx, g / (1.f + expf(-g)) * u);
  }
}

__global__ void history_kernel(const int32_t* tokens, const int32_t* cache_row, int32_t* history, int64_t n) {
  pdl_begin();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) history[cache_row[i]] = tokens[i];
}

template <typename T>
__global__ void randomize_kernel(T* data, int64_t n, uint64_t seed, uint64_t stream_id, float init_std, int matrix) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store(data, i, matrix ? init_std * kv::philox::normal(seed, stream_id, static_cast<uint64_t>(i)) : 1.f);
}

// ----------------------------------------------------------------------------- sampler

struct SeqSampling {
  float temperature, top_p, min_p, repetition_penalty;
  int32_t top_k, slot, length, pad;  // slot: the slot, or the sequence's row of the plan's page tables
  uint64_t seed, request_id;
};

// Order-preserving keys: larger float, larger key.
__device__ __forceinline__ uint32_t float_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// One block per sequence, in transformers' order: repetition penalty, temperature, top-k,
// top-p, min-p, then one inverse-CDF draw over ids in ascending order. top-k and top-p find
// their thresholds by bisection over the keys, so ties at a threshold are kept (as the CPU).
// History of a slot cache: history[slot * capacity + i]; of a paged cache (tables != null):
// history[page * page_tokens + i % page_tokens], page = tables[row * capacity + i / page_tokens].
__global__ void __launch_bounds__(1024) sample_kernel(const float* logits, float* work, int vocab,
                                                      const int32_t* history, int capacity, const SeqSampling* seqs,
                                                      int32_t* sampled, const int32_t* tables, int page_tokens) {
  pdl_begin();
  extern __shared__ uint32_t seen[];
  const int s = blockIdx.x;
  const SeqSampling sp = seqs[s];
  const float* in = logits + static_cast<int64_t>(s) * vocab;
  float* p = work + static_cast<int64_t>(s) * vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) p[i] = in[i];
  if (sp.repetition_penalty != 1.f) {
    const int words = (vocab + 31) / 32;
    for (int i = threadIdx.x; i < words; i += blockDim.x) seen[i] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < sp.length; i += blockDim.x) {
      const int32_t id = tables ? history[static_cast<int64_t>(tables[static_cast<int64_t>(sp.slot) * capacity +
                                                                       i / page_tokens]) * page_tokens +
                                          i % page_tokens]
                                : history[static_cast<int64_t>(sp.slot) * capacity + i];
      atomicOr(&seen[id >> 5], 1u << (id & 31));
    }
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
      if (seen[i >> 5] & (1u << (i & 31))) p[i] = p[i] > 0.f ? p[i] / sp.repetition_penalty : p[i] * sp.repetition_penalty;
  }
  __syncthreads();
  if (sp.temperature == 0.f) {  // argmax, lowest id on ties
    float best = kNegInf;
    int best_id = vocab;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
      if (p[i] > best) best = p[i], best_id = i;
    const float m = block_max(best);
    __shared__ int winner;
    if (threadIdx.x == 0) winner = vocab;
    __syncthreads();
    if (best == m) atomicMin(&winner, best_id);
    __syncthreads();
    if (threadIdx.x == 0) sampled[s] = winner;
    return;
  }
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) p[i] /= sp.temperature;
  __syncthreads();
  if (sp.top_k > 0 && sp.top_k < vocab) {
    // The largest key K with at least top_k logits at or above it: the k-th largest logit.
    uint32_t k_key = 0;
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t cand = k_key | (1u << bit);
      int count = 0;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) count += float_key(p[i]) >= cand;
      if (block_sum(count) >= sp.top_k) k_key = cand;
    }
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
      if (float_key(p[i]) < k_key) p[i] = kNegInf;
    __syncthreads();
  }
  float local_max = kNegInf;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) local_max = fmaxf(local_max, p[i]);
  const float m = block_max(local_max);
  double local = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float w = p[i] == kNegInf ? 0.f : expf(p[i] - m);
    p[i] = w;
    local += w;
  }
  double total = block_sum(local);
  if (sp.top_p < 1.f) {
    // The largest key K whose lighter tokens carry at most (1 - top_p) of the mass.
    const double limit = (1.0 - sp.top_p) * total;
    uint32_t p_key = 0;
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t cand = p_key | (1u << bit);
      double below = 0.0;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) below += __float_as_uint(p[i]) < cand ? p[i] : 0.0;
      if (block_sum(below) <= limit) p_key = cand;
    }
    local = 0.0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      if (__float_as_uint(p[i]) < p_key) p[i] = 0.f;
      local += p[i];
    }
    total = block_sum(local);
  }
  if (sp.min_p > 0.f) {  // the most likely token weighs exp(0) = 1
    local = 0.0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      if (p[i] < sp.min_p) p[i] = 0.f;
      local += p[i];
    }
    total = block_sum(local);
  }
  // Inverse CDF: thread j owns ids [j * chunk, (j + 1) * chunk); an exclusive scan of the chunk
  // sums finds the chunk holding the target.
  const double target = static_cast<double>(kv::philox::sample_uniform(
                            sp.seed, sp.request_id, static_cast<uint64_t>(sp.length))) * total;
  const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int lo = min(vocab, static_cast<int>(threadIdx.x) * chunk), hi = min(vocab, lo + chunk);
  double mine = 0.0;
  int last_positive = -1;
  for (int i = lo; i < hi; ++i) {
    mine += p[i];
    if (p[i] > 0.f) last_positive = i;
  }
  __shared__ double scan[1024];
  scan[threadIdx.x] = mine;
  __syncthreads();
  for (int off = 1; off < blockDim.x; off <<= 1) {  // inclusive Hillis-Steele scan
    const double add = threadIdx.x >= off ? scan[threadIdx.x - off] : 0.0;
    __syncthreads();
    scan[threadIdx.x] += add;
    __syncthreads();
  }
  const double before = scan[threadIdx.x] - mine;
  __shared__ int pick;
  if (threadIdx.x == 0) pick = vocab;
  __syncthreads();
  if (mine > 0.0 && before <= target && target < before + mine) {
    double c = before;
    int chosen = last_positive;
    for (int i = lo; i < hi; ++i) {
      c += p[i];
      if (p[i] > 0.f && c > target) {
        chosen = i;
        break;
      }
    }
    atomicMin(&pick, chosen);
  }
  __syncthreads();
  if (pick == vocab) {  // rounding put the target past the end: the last token with mass
    __shared__ int last;
    if (threadIdx.x == 0) last = -1;
    __syncthreads();
    if (last_positive >= 0) atomicMax(&last, last_positive);
    __syncthreads();
    if (threadIdx.x == 0) sampled[s] = last;
    return;
  }
  if (threadIdx.x == 0) sampled[s] = pick;
}

// ----------------------------------------------------------------------------- launch helpers

int group_tile(int group) {
  for (int g : {8, 4, 2})
    if (group % g == 0) return g;
  return 1;
}

// Everything one attention launch needs.
template <typename TKV, typename TOut>
struct AttnLaunch {
  dim3 grid;
  cudaStream_t stream;
  const float* qkv;
  int qkv_width;
  const TKV *k, *v;
  const int32_t *slot_row, *pos;
  TOut* out;
  int hq, hkv, group, tiles;
  float scale_log2;
  int splits;
  float *part_o, *part_lse;
  bool pdl;
};

template <typename TKV, typename TOut, int D, int G>
void launch_attention_g(const AttnLaunch<TKV, TOut>& a) {
  launch_kernel(a.pdl, attention_kernel<TKV, TOut, D, G>, a.grid, kAttnThreads, 0, a.stream,
      a.qkv, a.qkv_width, a.k, a.v, a.slot_row, a.pos, a.out, a.hq, a.hkv, a.group, a.tiles, a.scale_log2, a.splits,
      a.part_o, a.part_lse);
}

template <typename TKV, typename TOut, int D>
void launch_attention_d(int g_tile, const AttnLaunch<TKV, TOut>& a) {
  switch (g_tile) {
    case 8: launch_attention_g<TKV, TOut, D, 8>(a); break;
    case 4: launch_attention_g<TKV, TOut, D, 4>(a); break;
    case 2: launch_attention_g<TKV, TOut, D, 2>(a); break;
    default: launch_attention_g<TKV, TOut, D, 1>(a);
  }
}

// KV splits of a step's attention: enough blocks for four waves of the GPU, each split at least
// 32 positions of the slot capacity, at most 64. Depends on the batch shape only (graphs).
int attention_splits(int64_t tokens, int64_t blocks_per_token, int sms, int capacity) {
  const int64_t blocks = tokens * blocks_per_token;
  int64_t splits = (4 * static_cast<int64_t>(sms) + blocks - 1) / blocks;
  splits = std::min<int64_t>({splits, 64, std::max(1, capacity / 32)});
  return static_cast<int>(std::max<int64_t>(splits, 1));
}

// The workspace of one step, carved from Context::work.
struct Work {
  int32_t* tokens;
  int32_t* pos;
  int32_t* cache_row;  // slot * capacity + position
  int32_t* slot_row;   // slot * capacity
  int32_t* last_row;   // [S] index of each sequence's last token
  SeqSampling* sampling;
  float* x;
  void* h;
  float* qkv;
  void* attn;
  float* gate_up;
  void* act;
  void* last;
  float* logits;
  float* probs;
  int32_t* sampled;
  void* q_lowp;     // [tokens][q heads * head_dim] bf16 q for the tensor-core prefill
  const kv::cuda::PrefillTile* tiles;  // the prefill's query tiles (in the plan), longest first
  int num_tiles;    // 0: the split-KV kernel handles attention
  float* part_o;    // [tokens][q heads][splits][head_dim] split-KV partial outputs
  float* part_lse;  // [tokens][q heads][splits] their base-2 lse
  int32_t* hist_row;  // [tokens] cell of each token's id in the history
  // Paged caches. Plan order: the n_dec decode sequences (one new token) first, then the n_pre
  // others; token rows follow that order.
  const int32_t* tables = nullptr;   // [seqs][table_cols] physical pages
  int32_t table_cols = 0;
  const int32_t* kv_lens = nullptr;  // [seqs] tokens after the step
  const int32_t* q_indptr = nullptr; // [n_pre + 1] prefill rows, from the first prefill token
  const int32_t* upd_pages = nullptr;  // [num_upd] pages written this step (summary refresh)
  const int32_t* upd_valid = nullptr;  // [num_upd] their valid tokens after the step
  int32_t num_upd = 0;
  int32_t n_dec = 0, n_pre = 0;
  int32_t dec_max_kv_len = 0, pre_max_q_len = 0, pre_max_kv_len = 0;
  int32_t* quest_idx = nullptr;     // [n_dec][kv heads][top_k] selected logical pages
  int32_t* quest_counts = nullptr;  // [n_dec][kv heads]
  void* quest_ws = nullptr;
  uint64_t quest_ws_bytes = 0;
  void* decode_ws = nullptr;
  uint64_t decode_ws_bytes = 0;
  // Quantized caches (plan rows as above): the blocks of each row's quantized groups, their
  // count, the groups packed after the step, and for prefill over a quantized prefix the scratch
  // copy of every prefill row's KV (bf16 pages gathered, blocks unpacked).
  bool quant = false;
  const int32_t* qtable = nullptr;     // [seqs][table_cols]
  const int32_t* qcounts = nullptr;    // [seqs]
  const int32_t* pack_src = nullptr;   // [n_pack][G / P] pages of the groups to pack
  const int32_t* pack_dst = nullptr;   // [n_pack] their blocks
  int32_t n_pack = 0;
  bool materialize = false;
  const int32_t* scr_table = nullptr;  // [n_pre][scr_cols] scratch page of each logical page
  int32_t scr_cols = 0;
  const int32_t* copy_src = nullptr;   // [n_copy] bf16 pages gathered ...
  const int32_t* copy_dst = nullptr;   // ... into these scratch pages
  int32_t n_copy = 0;
  const int32_t* unpack_src = nullptr; // [n_unpack] blocks unpacked ...
  const int32_t* unpack_dst = nullptr; // ... into these scratch pages [n_unpack][G / P]
  int32_t n_unpack = 0;
  int32_t n_scr_pages = 0;
  void* scr_k = nullptr;
  void* scr_v = nullptr;
};

// One layer's quantized blocks as the kernel library sees them.
kv::quant::QuantKv quant_layer(const kv_kv_cache& cache, int64_t layer, int32_t hkv) {
  kv::quant::QuantKv q;
  q.blocks = static_cast<char*>(cache.qblocks) + static_cast<size_t>(layer * cache.qlayer_bytes());
  q.num_blocks = cache.num_qblocks;
  q.head_stride = static_cast<int64_t>(cache.qlayout.bytes);
  q.block_stride = q.head_stride * hkv;
  q.num_kv_heads = hkv;
  q.sink_tokens = cache.qsink;
  q.group_tokens = cache.qformat.group_tokens;
  q.head_dim = cache.qformat.head_dim;
  q.boost_channels = cache.qformat.boost_channels;
  q.layout = cache.qlayout;
  return q;
}

// Copies whole pages (K and V, every head) from the pool into the scratch pool, 16 bytes a thread.
__global__ void gather_pages_kernel(const uint4* k, const uint4* v, uint4* sk, uint4* sv, const int32_t* src,
                                    const int32_t* dst, int32_t n, int64_t page_vecs) {
  const int64_t total = n * page_vecs;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t page = i / page_vecs, e = i - page * page_vecs;
    sk[dst[page] * page_vecs + e] = k[src[page] * page_vecs + e];
    sv[dst[page] * page_vecs + e] = v[src[page] * page_vecs + e];
  }
}

// The cached cuBLASLt plan of out[rows][n] (+)= a[rows][k] w[n][k]^T, made on first use; null
// when cuBLASLt is absent or has no algorithm for the shape.
const LtPlan* lt_plan(Context* c, int64_t n, int64_t rows, int64_t k, int type) {
  const blas::LtApi* lt = blas::lt_api();
  if (!lt || !c->lt) return nullptr;
  LtPlan& plan = c->lt_plans[LtKey{n, rows, k, type}];
  if (plan.desc) return plan.ok ? &plan : nullptr;
  blas::check(lt->desc_create(&plan.desc, blas::kCompute32F, blas::kR32F), "cublasLtMatmulDescCreate");
  const int32_t op_t = blas::kOpT, op_n = blas::kOpN;
  blas::check(lt->desc_set(plan.desc, blas::kLtDescTransA, &op_t, sizeof op_t), "cublasLtMatmulDescSetAttribute");
  blas::check(lt->desc_set(plan.desc, blas::kLtDescTransB, &op_n, sizeof op_n), "cublasLtMatmulDescSetAttribute");
  blas::check(lt->layout_create(&plan.a, type, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k),
              "cublasLtMatrixLayoutCreate");
  blas::check(lt->layout_create(&plan.b, type, static_cast<uint64_t>(k), static_cast<uint64_t>(rows), k),
              "cublasLtMatrixLayoutCreate");
  blas::check(lt->layout_create(&plan.c, blas::kR32F, static_cast<uint64_t>(n), static_cast<uint64_t>(rows), n),
              "cublasLtMatrixLayoutCreate");
  void* pref = nullptr;
  blas::check(lt->pref_create(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t workspace = kBlasWorkspaceBytes;
  blas::check(lt->pref_set(pref, blas::kLtPrefMaxWorkspace, &workspace, sizeof workspace),
              "cublasLtMatmulPreferenceSetAttribute");
  blas::LtHeuristicResult result{};
  int returned = 0;
  const blas::Status status =
      lt->heuristic(c->lt, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &returned);
  (void)lt->pref_destroy(pref);
  plan.ok = status == 0 && returned > 0 && result.state == 0;
  if (plan.ok) plan.algo = result.algo;
  return plan.ok ? &plan : nullptr;
}

// Attention of one layer over a paged cache (head-major pages of the layer at k_layer/v_layer):
// key summaries of the pages written, then decode tokens (Quest's selection first when asked)
// and prefill chunks through the paged ops of the kernel library.
void paged_attention(Context* c, const kv_model& m, const kv_kv_cache& cache, const StepBatch& b, const Work& w,
                     int64_t layer, void* k_layer, void* v_layer) {
  const kv_model_config& cfg = m.cfg;
  const int32_t HQ = cfg.num_q_heads, HKV = cfg.num_kv_heads, D = cfg.head_dim, P = cache.page_tokens;
  const size_t es = m.wdtype == KV_DTYPE_BF16 ? 2 : 4;
  PagedKv pool;
  pool.k = k_layer;
  pool.v = v_layer;
  pool.num_pages = cache.num_pages;
  pool.page_tokens = P;
  pool.num_kv_heads = HKV;
  pool.head_dim = D;
  pool.page_stride = static_cast<int64_t>(HKV) * P * D;
  pool.head_stride = static_cast<int64_t>(P) * D;
  pool.token_stride = D;
  PageSummaries summaries;
  if (cache.summaries) {
    summaries.data = static_cast<char*>(cache.summaries) +
                     static_cast<size_t>(layer) * cache.num_pages * HKV * 2 * D * es;
    summaries.page_stride = static_cast<int64_t>(HKV) * 2 * D;
    summaries.head_stride = 2 * D;
    PageSummaryArgs u;
    u.dtype = m.wdtype;
    u.kv = pool;
    u.pages = w.upd_pages;
    u.valid_tokens = w.upd_valid;
    u.num_update = w.num_upd;
    u.summaries = summaries;
    kv::cuda::page_summary_update(&c->ops, u);
  }
  const float sm_scale = 1.f / sqrtf(static_cast<float>(D));
  if (w.n_dec > 0) {
    PageTable table;
    table.pages = w.tables;
    table.seq_stride = w.table_cols;
    table.kv_lens = w.kv_lens;
    PagedDecodeArgs a;
    a.dtype = m.wdtype;
    a.q = w.q_lowp;
    a.kv = pool;
    a.table = table;
    a.o = w.attn;
    a.batch = w.n_dec;
    a.num_q_heads = HQ;
    a.max_kv_len = w.dec_max_kv_len;
    a.sm_scale = sm_scale;
    a.workspace = w.decode_ws;
    a.workspace_bytes = w.decode_ws_bytes;
    if (w.quant) {
      QuantDecodeArgs qa;
      qa.dtype = m.wdtype;
      qa.q = w.q_lowp;
      qa.kv = pool;
      qa.table = table;
      qa.qkv = quant_layer(cache, layer, HKV);
      qa.qtable.blocks = w.qtable;
      qa.qtable.seq_stride = w.table_cols;
      qa.qtable.counts = w.qcounts;
      qa.o = w.attn;
      qa.batch = w.n_dec;
      qa.num_q_heads = HQ;
      qa.max_kv_len = w.dec_max_kv_len;
      qa.sm_scale = sm_scale;
      qa.workspace = w.decode_ws;
      qa.workspace_bytes = w.decode_ws_bytes;
      kv::cuda::quant_decode(&c->ops, qa);
    } else if (b.selection == KV_SELECTION_QUEST) {
      QuestSelectArgs q;
      q.dtype = m.wdtype;
      q.q = w.q_lowp;
      q.kv = pool;
      q.table = table;
      q.summaries = summaries;
      q.batch = w.n_dec;
      q.num_q_heads = HQ;
      q.max_kv_len = w.dec_max_kv_len;
      q.top_k = b.select_top_k;
      q.indices_out = w.quest_idx;
      q.counts_out = w.quest_counts;
      q.out_stride = b.select_top_k;
      q.workspace = w.quest_ws;
      q.workspace_bytes = w.quest_ws_bytes;
      kv::cuda::quest_select(&c->ops, q);
      a.select.indices = w.quest_idx;
      a.select.counts = w.quest_counts;
      a.select.stride = b.select_top_k;
    }
    if (!w.quant) kv::cuda::paged_decode(&c->ops, a);
  }
  if (w.n_pre > 0) {
    PagedPrefillArgs a;
    a.dtype = m.wdtype;
    a.q = static_cast<const char*>(w.q_lowp) + static_cast<size_t>(w.n_dec) * HQ * D * es;
    a.q_indptr = w.q_indptr;
    a.kv = pool;
    a.table.pages = w.tables + static_cast<int64_t>(w.n_dec) * w.table_cols;
    a.table.seq_stride = w.table_cols;
    if (w.materialize) {
      // The prefill rows' KV of this layer as one bf16 scratch pool: their bf16 pages gathered,
      // their quantized groups unpacked (the values decode reads, rounded to bf16).
      PagedKv scratch = pool;
      scratch.k = w.scr_k;
      scratch.v = w.scr_v;
      scratch.num_pages = w.n_scr_pages;
      const int64_t page_vecs = pool.page_stride * static_cast<int64_t>(es) / 16;
      if (w.n_copy > 0) {
        const int64_t total = w.n_copy * page_vecs;
        const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, int64_t{c->sms} * 8));
        gather_pages_kernel<<<blocks, 256, 0, c->stream>>>(
            static_cast<const uint4*>(k_layer), static_cast<const uint4*>(v_layer), static_cast<uint4*>(w.scr_k),
            static_cast<uint4*>(w.scr_v), w.copy_src, w.copy_dst, w.n_copy, page_vecs);
        KV_CUDA_CHECK_LAUNCH();
      }
      if (w.n_unpack > 0) {
        QuantUnpackArgs ua;
        ua.dtype = m.wdtype;
        ua.src = quant_layer(cache, layer, HKV);
        ua.src_blocks = w.unpack_src;
        ua.dst_pages = w.unpack_dst;
        ua.num_jobs = w.n_unpack;
        ua.dst = scratch;
        kv::cuda::quant_unpack(&c->ops, ua);
      }
      a.kv = scratch;
      a.table.pages = w.scr_table;
      a.table.seq_stride = w.scr_cols;
    }
    a.table.kv_lens = w.kv_lens + w.n_dec;
    a.o = static_cast<char*>(w.attn) + static_cast<size_t>(w.n_dec) * HQ * D * es;
    a.batch = w.n_pre;
    a.num_q_heads = HQ;
    a.max_q_len = w.pre_max_q_len;
    a.max_kv_len = w.pre_max_kv_len;
    a.sm_scale = sm_scale;
    kv::cuda::paged_prefill(&c->ops, a);
  }
}

template <typename TW>
void run_step(Context* c, kv_model& m, kv_kv_cache& cache, const StepBatch& b, const Work& w, StageMarks& marks) {
  const kv_model_config& cfg = m.cfg;
  const int64_t T = b.num_tokens, S = b.num_seqs, H = cfg.hidden_size, D = cfg.head_dim, HQ = cfg.num_q_heads,
                HKV = cfg.num_kv_heads, QD = HQ * D, KVD = HKV * D, QKV = QD + 2 * KVD, I = cfg.intermediate_size,
                V = cfg.vocab_size;
  const kv_dtype dt = m.wdtype;
  const int blas_type = dt == KV_DTYPE_BF16 ? blas::kR16BF : blas::kR32F;
  const blas::Api& api = blas::api();
  const cudaStream_t st = c->stream;
  const bool pdl = m.pdl;
  auto use_gemv = [&](int64_t rows, int64_t k) { return dt == KV_DTYPE_BF16 && rows <= m.gemv_max_rows && k % 8 == 0; };
  auto gemm = [&](const void* a, const void* weight, float* out, int64_t rows, int64_t k, int64_t n, float beta) {
    if (use_gemv(rows, k)) {
      launch_gemv(static_cast<int>(rows), static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(weight), out,
                  static_cast<int>(k), static_cast<int>(n), beta != 0.f, false, pdl, c->sms, st);
      return;
    }
    const float alpha = 1.f;
    // Row-major out[rows][n] = a[rows][k] * weight[n][k]^T is, column-major, out^T = weight^T(op T) * a^T.
    if (const LtPlan* plan = lt_plan(c, n, rows, k, blas_type)) {
      blas::check(blas::lt_api()->matmul(c->lt, plan->desc, &alpha, weight, plan->a, a, plan->b, &beta, out, plan->c,
                                         out, plan->c, &plan->algo, c->blas_workspace, kBlasWorkspaceBytes, st),
                  "cublasLtMatmul");
      return;
    }
    blas::check(api.gemm_ex(c->blas, blas::kOpT, blas::kOpN, static_cast<int>(n), static_cast<int>(rows),
                            static_cast<int>(k), &alpha, weight, blas_type, static_cast<int>(k), a, blas_type,
                            static_cast<int>(k), &beta, out, blas::kR32F, static_cast<int>(n), blas::kCompute32F,
                            blas::kGemmDefault),
                "cublasGemmEx");
  };
  const int norm_threads = H >= 4096 && T <= 8 ? 1024 : 256;  // few rows: a whole SM each
  launch_kernel(pdl, history_kernel, static_cast<unsigned>((T + 255) / 256), 256, 0, st, w.tokens, w.hist_row,
                static_cast<int32_t*>(cache.device_history), T);
  launch_kernel(pdl, embed_kernel<TW>, static_cast<unsigned>(T), kThreads, 0, st, w.tokens,
                static_cast<const TW*>(m.embed.data), w.x, static_cast<int>(H));
  KV_CUDA_CHECK_LAUNCH();
  marks.mark(kStageEmbed);
  const int group = static_cast<int>(HQ / HKV), tile = group_tile(group), tiles = group / tile;
  const float scale_log2 = kv::cuda::kLog2e / sqrtf(static_cast<float>(D));
  const bool paged = cache.paged;
  const int64_t P = cache.page_tokens;
  const size_t layer_elems = paged ? static_cast<size_t>(cache.num_pages) * P * KVD
                                   : static_cast<size_t>(cache.num_slots) * cache.capacity * KVD;
  const int64_t kv_row_stride = paged ? D : KVD, kv_head_stride = paged ? P * D : D;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const Layer& L = m.layers[l];
    TW* k_layer = static_cast<TW*>(cache.k) + l * layer_elems;
    TW* v_layer = static_cast<TW*>(cache.v) + l * layer_elems;
    launch_kernel(pdl, rms_norm_kernel<TW>, static_cast<unsigned>(T), norm_threads, 0, st, w.x,
                  static_cast<const int32_t*>(nullptr), static_cast<const float*>(L.attn_norm.data),
                  static_cast<TW*>(w.h), static_cast<int>(H), cfg.rms_norm_eps);
    marks.mark(kStageAttnNorm);
    gemm(w.h, L.qkv.data, w.qkv, T, H, QKV, 0.f);
    marks.mark(kStageQkv);
    const int heads_per_block = static_cast<int>(256 / (D / 2));
    launch_kernel(pdl, qkv_post_kernel<TW>,
                  dim3(static_cast<unsigned>(T), static_cast<unsigned>((HQ + 2 * HKV + heads_per_block - 1) / heads_per_block)),
                  dim3(static_cast<unsigned>(D / 2), static_cast<unsigned>(heads_per_block)), 0, st, w.qkv, static_cast<const float*>(L.qkv_bias.data),
                                   static_cast<const float*>(L.q_norm.data), static_cast<const float*>(L.k_norm.data),
                                   m.device_inv_freq, w.pos, w.cache_row, k_layer, v_layer,
                                   w.num_tiles > 0 || paged ? static_cast<TW*>(w.q_lowp) : nullptr,
                                   static_cast<int>(HQ), static_cast<int>(HKV), static_cast<int>(D),
                                   static_cast<int>(QKV), cfg.qk_norm, cfg.rms_norm_eps, kv_row_stride,
                                   kv_head_stride);
    marks.mark(kStageQkvPost);
    if (paged) {
      paged_attention(c, m, cache, b, w, l, k_layer, v_layer);
    } else if (w.num_tiles > 0) {  // a prefill step of a bf16 model: tensor cores
      kv::cuda::PrefillParams pp;
      pp.q = static_cast<const uint16_t*>(w.q_lowp);
      pp.q_row_stride = QD;
      pp.k = reinterpret_cast<const uint16_t*>(k_layer);
      pp.v = reinterpret_cast<const uint16_t*>(v_layer);
      pp.kv_row_stride = KVD;
      pp.o = static_cast<uint16_t*>(w.attn);
      pp.o_row_stride = QD;
      pp.num_q_heads = static_cast<int32_t>(HQ);
      pp.num_kv_heads = static_cast<int32_t>(HKV);
      pp.scale_log2 = scale_log2;
      pp.tiles = w.tiles;
      kv::cuda::launch_attention_prefill(pp, static_cast<int>(D), w.num_tiles, st);
    } else {
    const int splits = attention_splits(T, HKV * tiles, c->sms, cache.capacity);
    const AttnLaunch<TW, TW> launch{dim3(static_cast<unsigned>(T), static_cast<unsigned>(HKV * tiles),
                                         static_cast<unsigned>(splits)),
                                    st, w.qkv, static_cast<int>(QKV), k_layer, v_layer, w.slot_row, w.pos,
                                    static_cast<TW*>(w.attn), static_cast<int>(HQ), static_cast<int>(HKV), group,
                                    tiles, scale_log2, splits, w.part_o, w.part_lse, pdl};
    switch (D) {
      case 64: launch_attention_d<TW, TW, 64>(tile, launch); break;
      case 128: launch_attention_d<TW, TW, 128>(tile, launch); break;
      default: launch_attention_d<TW, TW, 256>(tile, launch);
    }
    if (splits > 1) {
      KV_CUDA_CHECK_LAUNCH();
      launch_kernel(pdl, combine_splits_kernel<TW>, static_cast<unsigned>(T * HQ),
                    static_cast<unsigned>(std::min<int64_t>(D, 128)), 0, st, w.part_o, w.part_lse,
                    static_cast<TW*>(w.attn), splits, static_cast<int>(D));
    }
    }
    KV_CUDA_CHECK_LAUNCH();
    marks.mark(kStageAttention);
    gemm(w.attn, L.o.data, w.x, T, QD, H, 1.f);  // the residual: x += attn o_proj^T
    marks.mark(kStageO);
    launch_kernel(pdl, rms_norm_kernel<TW>, static_cast<unsigned>(T), norm_threads, 0, st, w.x,
                  static_cast<const int32_t*>(nullptr), static_cast<const float*>(L.mlp_norm.data),
                  static_cast<TW*>(w.h), static_cast<int>(H), cfg.rms_norm_eps);
    marks.mark(kStageMlpNorm);
    if (use_gemv(T, H)) {  // SwiGLU in the projection's epilogue
      launch_gemv(static_cast<int>(T), static_cast<const uint16_t*>(w.h), static_cast<const uint16_t*>(L.gate_up.data),
                  w.act, static_cast<int>(H), static_cast<int>(2 * I), false, true, pdl, c->sms, st);
      marks.mark(kStageGateUp);
    } else {
      gemm(w.h, L.gate_up.data, w.gate_up, T, H, 2 * I, 0.f);
      marks.mark(kStageGateUp);
      launch_kernel(pdl, silu_mul_kernel<TW>, static_cast<unsigned>(std::min<int64_t>((T * I / 4 + 255) / 256, 1 << 20)), 256,
                    0, st, w.gate_up, static_cast<TW*>(w.act), T, static_cast<int>(I));
      marks.mark(kStageSilu);
    }
    gemm(w.act, L.down.data, w.x, T, I, H, 1.f);
    KV_CUDA_CHECK_LAUNCH();
    marks.mark(kStageDown);
  }
  launch_kernel(pdl, rms_norm_kernel<TW>, static_cast<unsigned>(S), norm_threads, 0, st, w.x,
                static_cast<const int32_t*>(w.last_row), static_cast<const float*>(m.final_norm.data),
                static_cast<TW*>(w.last), static_cast<int>(H), cfg.rms_norm_eps);
  marks.mark(kStageFinalNorm);
  gemm(w.last, cfg.tie_word_embeddings ? m.embed.data : m.lm_head.data, w.logits, S, H, V, 0.f);
  marks.mark(kStageLmHead);
  if (b.sampled) {
    const size_t seen_bytes = b.repetition_penalty ? (static_cast<size_t>(V) + 31) / 32 * 4 : 0;
    if (seen_bytes > 48 * 1024)
      KV_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(seen_bytes)));
    launch_kernel(pdl, sample_kernel, static_cast<unsigned>(S), 1024, seen_bytes, st, w.logits, w.probs,
                  static_cast<int>(V), static_cast<const int32_t*>(cache.device_history),
                  paged ? w.table_cols : cache.capacity, static_cast<const SeqSampling*>(w.sampling), w.sampled,
                  paged ? w.tables : static_cast<const int32_t*>(nullptr), static_cast<int>(P));
    KV_CUDA_CHECK_LAUNCH();
    marks.mark(kStageSample);
  }
}

}  // namespace

Context* create_context(int32_t device) {
  DeviceGuard guard(device);
  const blas::Api& api = blas::api();  // fails here, clearly, when cuBLAS is missing
  auto* c = new Context{};
  c->device = device;
  (void)cudaDeviceGetAttribute(&c->sms, cudaDevAttrMultiProcessorCount, device);
  cudaError_t err = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
  if (err != cudaSuccess) {
    delete c;
    throw_cuda(err, "cudaStreamCreateWithFlags", __FILE__, __LINE__);
  }
  try {
    blas::check(api.create(&c->blas), "cublasCreate");
    blas::check(api.set_stream(c->blas, c->stream), "cublasSetStream");
    KV_CUDA_CHECK(cudaMalloc(&c->blas_workspace, kBlasWorkspaceBytes));
    if (const blas::LtApi* lt = blas::lt_api()) blas::check(lt->create(&c->lt), "cublasLtCreate");
    blas::check(api.set_workspace(c->blas, c->blas_workspace, kBlasWorkspaceBytes), "cublasSetWorkspace");
    KV_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&c->error_host), sizeof(DeviceErrorRecord),
                                cudaHostAllocMapped | cudaHostAllocPortable));
    std::memset(c->error_host, 0, sizeof(DeviceErrorRecord));
    void* device_record = nullptr;
    KV_CUDA_CHECK(cudaHostGetDevicePointer(&device_record, c->error_host, 0));
    void* arrivals = nullptr;  // the ops' arrival counters (cuda_common.cuh): zero before any capture
    KV_CUDA_CHECK(cudaMalloc(&arrivals, kv::cuda::kArrivalCounters * sizeof(uint32_t)));
    c->arrivals = static_cast<uint32_t*>(arrivals);
    KV_CUDA_CHECK(cudaMemsetAsync(arrivals, 0, kv::cuda::kArrivalCounters * sizeof(uint32_t), c->stream));
    KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    c->ops = kv::cuda::Stream{c->stream, device, static_cast<DeviceErrorRecord*>(device_record), c->arrivals};
  } catch (...) {
    destroy_context(c);
    throw;
  }
  return c;
}

void destroy_context(Context* c) noexcept {
  if (!c) return;
  int previous = -1;
  (void)cudaGetDevice(&previous);
  (void)cudaSetDevice(c->device);
  if (c->stream) (void)cudaStreamSynchronize(c->stream);
  for (auto& [key, entry] : c->graphs)
    if (entry.exec) (void)cudaGraphExecDestroy(entry.exec);
  for (cudaEvent_t e : c->events) (void)cudaEventDestroy(e);
  if (const blas::LtApi* lt = blas::lt_api()) {
    for (auto& [key, plan] : c->lt_plans) {
      if (plan.desc) (void)lt->desc_destroy(plan.desc);
      if (plan.a) (void)lt->layout_destroy(plan.a);
      if (plan.b) (void)lt->layout_destroy(plan.b);
      if (plan.c) (void)lt->layout_destroy(plan.c);
    }
    if (c->lt) (void)lt->destroy(c->lt);
  }
  if (c->blas) (void)blas::api().destroy(c->blas);
  if (c->blas_workspace) (void)cudaFree(c->blas_workspace);
  if (c->arrivals) (void)cudaFree(c->arrivals);
  if (c->work) (void)cudaFree(c->work);
  if (c->scratch) (void)cudaFree(c->scratch);
  if (c->pinned) (void)cudaFreeHost(c->pinned);
  if (c->error_host) (void)cudaFreeHost(c->error_host);
  if (c->stream) (void)cudaStreamDestroy(c->stream);
  if (previous >= 0) (void)cudaSetDevice(previous);
  delete c;
}

void upload(Context* c, void* dst, const void* src, size_t bytes) {
  DeviceGuard guard(c->device);
  KV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
  KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

void fill_zero(Context* c, void* dst, size_t bytes) {
  DeviceGuard guard(c->device);
  KV_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, c->stream));
  KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

void randomize(Context* c, Tensor& t, uint64_t seed, uint64_t stream_id, float init_std) {
  DeviceGuard guard(c->device);
  const int64_t n = t.rows * t.cols;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 65535));
  if (t.dtype == KV_DTYPE_BF16)
    randomize_kernel<<<blocks, 256, 0, c->stream>>>(static_cast<uint16_t*>(t.data), n, seed, stream_id, init_std,
                                                    t.cols > 1);
  else
    randomize_kernel<<<blocks, 256, 0, c->stream>>>(static_cast<float*>(t.data), n, seed, stream_id, init_std,
                                                    t.cols > 1);
  KV_CUDA_CHECK_LAUNCH();
  KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

int32_t* alloc_history(Context* c, int64_t elements) {
  DeviceGuard guard(c->device);
  void* p = nullptr;
  KV_CUDA_CHECK(cudaMalloc(&p, static_cast<size_t>(elements) * sizeof(int32_t)));
  KV_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(elements) * sizeof(int32_t), c->stream));
  return static_cast<int32_t*>(p);
}

void free_history(Context* c, int32_t* history) noexcept {
  if (!history) return;
  (void)cudaFree(history);
  (void)c;
}

namespace {

void drop_graphs(Context* c) noexcept {
  for (auto& [key, entry] : c->graphs)
    if (entry.exec) (void)cudaGraphExecDestroy(entry.exec);
  c->graphs.clear();
}

// Runs the step's kernels into c->stream: eagerly, or by replaying (capturing first) the graph
// of its shape. Only decode steps use graphs: their launches depend on the batch shape alone,
// everything else (tokens, positions, slots, sampling) is read from the plan on the device.
template <typename TW>
void launch_step(Context* c, kv_model& m, kv_kv_cache& cache, const StepBatch& b, const Work& w, StageMarks& marks) {
  const bool decode = b.num_tokens == b.num_seqs;
  if (!m.cuda_graphs || marks.on || !decode) {
    run_step<TW>(c, m, cache, b, w, marks);
    return;
  }
  const GraphKey key{cache.serial, b.num_seqs, b.sampled != nullptr, b.repetition_penalty != nullptr && b.sampled != nullptr,
                     m.wdtype == KV_DTYPE_BF16 && b.num_seqs <= m.gemv_max_rows, w.table_cols,
                     cache.paged ? b.selection : 0, cache.paged ? b.select_top_k : 0};
  GraphEntry& entry = c->graphs[key];
  if (!entry.exec && entry.seen++ == 0) {  // first time: eager (loads every kernel it needs)
    run_step<TW>(c, m, cache, b, w, marks);
    return;
  }
  if (!entry.exec) {
    KV_CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
      run_step<TW>(c, m, cache, b, w, marks);
    } catch (...) {
      (void)cudaStreamEndCapture(c->stream, &graph);
      if (graph) (void)cudaGraphDestroy(graph);
      throw;
    }
    KV_CUDA_CHECK(cudaStreamEndCapture(c->stream, &graph));
    const cudaError_t err = cudaGraphInstantiate(&entry.exec, graph, 0);
    (void)cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      entry.exec = nullptr;
      throw_cuda(err, "cudaGraphInstantiate", __FILE__, __LINE__);
    }
    ++c->graph_captures;
  }
  KV_CUDA_CHECK(cudaGraphLaunch(entry.exec, c->stream));
  ++c->graph_launches;
}

}  // namespace

// A paged op's kernel found a bad index although the host checked every one: a bug, reported.
static void check_device_errors(Context* c) {
  volatile DeviceErrorRecord* rec = c->error_host;
  if (!rec || rec->code == kDeviceErrorNone) return;
  const int32_t code = rec->code;
  const int64_t entry = rec->entry, value = rec->value, limit = rec->limit;
  rec->code = kDeviceErrorNone;
  fail(KV_STATUS_INTERNAL, "a paged model step failed on the device: ", device_error_what(code), " (entry ", entry,
       ", value ", value, ", limit ", limit, "); the step's output is not valid");
}

void copy_pages(kv_model& m, kv_kv_cache& cache, const int32_t* src, const int32_t* dst, int32_t num_copies) {
  Context* c = m.cuda;
  DeviceGuard guard(c->device);
  const kv_model_config& cfg = m.cfg;
  const size_t es = m.wdtype == KV_DTYPE_BF16 ? 2 : 4;
  const size_t page_bytes = static_cast<size_t>(cache.page_tokens) * kv_row_elems(cfg) * es;
  const size_t summary_bytes = static_cast<size_t>(kv_row_elems(cfg)) * 2 * es;
  auto copy = [&](void* base, size_t unit, size_t index_src, size_t index_dst) {
    KV_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(base) + index_dst * unit,
                                  static_cast<const char*>(base) + index_src * unit, unit, cudaMemcpyDeviceToDevice,
                                  c->stream));
  };
  for (int32_t l = 0; l < cfg.num_layers; ++l) {
    const size_t layer = static_cast<size_t>(l) * cache.num_pages;
    for (int32_t i = 0; i < num_copies; ++i) {
      copy(cache.k, page_bytes, layer + src[i], layer + dst[i]);
      copy(cache.v, page_bytes, layer + src[i], layer + dst[i]);
      if (cache.summaries) copy(cache.summaries, summary_bytes, layer + src[i], layer + dst[i]);
    }
  }
  for (int32_t i = 0; i < num_copies; ++i)
    copy(cache.device_history, sizeof(int32_t) * cache.page_tokens, static_cast<size_t>(src[i]),
         static_cast<size_t>(dst[i]));
  // The step after this reads the copies in stream order; the host arrays are not kept.
  KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

void unpack_blocks(kv_model& m, kv_kv_cache& cache, const int32_t* blocks, const int32_t* pages, int32_t num_blocks) {
  Context* c = m.cuda;
  DeviceGuard guard(c->device);
  const kv_model_config& cfg = m.cfg;
  const int32_t per = cache.qformat.group_tokens / cache.page_tokens;
  const size_t ids_bytes = static_cast<size_t>(num_blocks) * (per + 1) * 4;
  int32_t* ids = nullptr;
  KV_CUDA_CHECK(cudaMalloc(&ids, ids_bytes));
  try {
    KV_CUDA_CHECK(cudaMemcpyAsync(ids, blocks, static_cast<size_t>(num_blocks) * 4, cudaMemcpyHostToDevice, c->stream));
    KV_CUDA_CHECK(cudaMemcpyAsync(ids + num_blocks, pages, static_cast<size_t>(num_blocks) * per * 4,
                                  cudaMemcpyHostToDevice, c->stream));
    const size_t es = m.wdtype == KV_DTYPE_BF16 ? 2 : 4;
    const int64_t P = cache.page_tokens, H = cfg.num_kv_heads, D = cfg.head_dim;
    const size_t layer_bytes = static_cast<size_t>(cache.num_pages) * P * H * D * es;
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      QuantUnpackArgs a;
      a.dtype = m.wdtype;
      a.src = quant_layer(cache, l, cfg.num_kv_heads);
      a.src_blocks = ids;
      a.dst_pages = ids + num_blocks;
      a.num_jobs = num_blocks;
      a.dst.k = static_cast<char*>(cache.k) + l * layer_bytes;
      a.dst.v = static_cast<char*>(cache.v) + l * layer_bytes;
      a.dst.num_pages = cache.num_pages;
      a.dst.page_tokens = static_cast<int32_t>(P);
      a.dst.num_kv_heads = static_cast<int32_t>(H);
      a.dst.head_dim = static_cast<int32_t>(D);
      a.dst.page_stride = H * P * D;
      a.dst.head_stride = P * D;
      a.dst.token_stride = D;
      kv::cuda::quant_unpack(&c->ops, a);
    }
    KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
  } catch (...) {
    (void)cudaFree(ids);
    throw;
  }
  KV_CUDA_CHECK(cudaFree(ids));
  check_device_errors(c);
}

void set_profiling(Context* c, bool on) {
  c->profiling = on;
  if (!on)
    for (ProfileTotals& t : c->totals) t = ProfileTotals{};
}

std::string profile_text(const Context* c) {
  std::string text = "kind stage calls total_ms launch_ms\n";
  char line[160];
  const char* kinds[2] = {"decode", "prefill"};
  for (int k = 0; k < 2; ++k) {
    const ProfileTotals& t = c->totals[k];
    if (t.steps == 0) continue;
    for (int s = 0; s < kStageCount; ++s) {
      if (t.calls[s] == 0) continue;
      std::snprintf(line, sizeof line, "%s %s %lld %.4f %.4f\n", kinds[k], kStageNames[s],
                    static_cast<long long>(t.calls[s]), t.ms[s], t.launch_ms[s]);
      text += line;
    }
    std::snprintf(line, sizeof line, "%s host_step %lld %.4f\n", kinds[k], static_cast<long long>(t.steps), t.host_ms);
    text += line;
  }
  std::snprintf(line, sizeof line, "graphs captured %lld launched %lld\n", static_cast<long long>(c->graph_captures),
                static_cast<long long>(c->graph_launches));
  text += line;
  return text;
}

void forget_cache(Context* c, uint64_t cache_serial) noexcept {
  for (auto it = c->graphs.begin(); it != c->graphs.end();) {
    if (it->first.cache == cache_serial) {
      if (it->second.exec) (void)cudaGraphExecDestroy(it->second.exec);
      it = c->graphs.erase(it);
    } else {
      ++it;
    }
  }
}

void step(kv_model& m, kv_kv_cache& cache, const StepBatch& b) {
  Context* c = m.cuda;
  DeviceGuard guard(c->device);
  const auto host_start = std::chrono::steady_clock::now();
  const kv_model_config& cfg = m.cfg;
  const int64_t T = b.num_tokens, S = b.num_seqs, H = cfg.hidden_size, QD = static_cast<int64_t>(cfg.num_q_heads) * cfg.head_dim,
                KVD = static_cast<int64_t>(cfg.num_kv_heads) * cfg.head_dim, I = cfg.intermediate_size,
                V = cfg.vocab_size;
  const size_t es = m.wdtype == KV_DTYPE_BF16 ? 2 : 4;

  // The plan (integers and sampling parameters) is staged in pinned memory and copied once.
  // Prefill steps of bf16 models run attention on tensor cores over query tiles: each
  // sequence's new tokens in tiles of prefill_tile_rows, the tiles with the most keys first.
  std::vector<kv::cuda::PrefillTile> tiles;
  if (!cache.paged && m.wdtype == KV_DTYPE_BF16 && (cfg.head_dim == 64 || cfg.head_dim == 128) && T > S) {
    const int rows = kv::cuda::prefill_tile_rows(cfg.head_dim);
    for (int32_t s = 0; s < S; ++s)
      for (int32_t q0 = 0; q0 < b.num_new[s]; q0 += rows)
        tiles.push_back({static_cast<int32_t>(b.token_offset[s] + q0), std::min(rows, b.num_new[s] - q0),
                         b.start_pos[s] + q0, 0, static_cast<int64_t>(b.slots[s]) * cache.capacity});
    std::stable_sort(tiles.begin(), tiles.end(), [](const auto& x, const auto& y) {
      return x.q_pos0 + x.q_count > y.q_pos0 + y.q_count;
    });
  }
  // Paged caches: the plan's sequence order (decode sequences first), page-table width (a power
  // of two, so decode steps of similar lengths share a captured graph) and the pages written.
  const bool paged = cache.paged;
  const int64_t P = cache.page_tokens;
  std::vector<int32_t> order;  // plan row -> the caller's sequence
  int32_t n_dec = 0, table_cols = 0, max_pages = 0, pre_max_q = 0, pre_max_kv = 0;
  int64_t num_upd = 0;
  if (paged) {
    for (int32_t s = 0; s < S; ++s)
      if (b.num_new[s] == 1) order.push_back(s);
    n_dec = static_cast<int32_t>(order.size());
    for (int32_t s = 0; s < S; ++s)
      if (b.num_new[s] != 1) order.push_back(s);
    for (int32_t s = 0; s < S; ++s) {
      const int64_t end = static_cast<int64_t>(b.start_pos[s]) + b.num_new[s];
      max_pages = std::max<int32_t>(max_pages, static_cast<int32_t>((end + P - 1) / P));
      num_upd += (end + P - 1) / P - b.start_pos[s] / P;
      if (b.num_new[s] != 1) {
        pre_max_q = std::max(pre_max_q, b.num_new[s]);
        pre_max_kv = std::max<int32_t>(pre_max_kv, static_cast<int32_t>(end));
      }
    }
    table_cols = 1;
    while (table_cols < max_pages) table_cols *= 2;
  }
  const int32_t n_pre = paged ? S - n_dec : 0;
  const int32_t dec_max_kv_len = static_cast<int32_t>(std::min<int64_t>(int64_t{table_cols} * P, cfg.max_positions));
  // Quantized caches: the groups to pack, and whether prefill rows attend a quantized prefix
  // (then every prefill row's KV is copied into the scratch pool, scr_cols pages per row).
  const bool quant = paged && cache.quant() && b.quant_blocks != nullptr;
  const int32_t QG = quant ? cache.qformat.group_tokens : 0, per_group = quant ? QG / static_cast<int32_t>(P) : 0;
  int64_t n_pack = 0, n_scr_pages = 0, n_unpack = 0;
  int32_t scr_cols = 0;
  bool materialize = false;
  if (quant) {
    for (int32_t s = 0; s < S; ++s) {
      n_pack += b.quant_after[s] - b.quant_before[s];
      if (b.num_new[s] != 1 && b.quant_before[s] > 0) materialize = true;
    }
    if (materialize)
      for (int32_t s = 0; s < S; ++s) {
        if (b.num_new[s] == 1) continue;
        const int32_t pages = static_cast<int32_t>((static_cast<int64_t>(b.start_pos[s]) + b.num_new[s] + P - 1) / P);
        n_scr_pages += pages;
        scr_cols = std::max(scr_cols, pages);
        n_unpack += b.quant_before[s];
      }
  }
  const size_t quant_ints = quant ? static_cast<size_t>(S) * table_cols + S + n_pack * (per_group + 1) +
                                        static_cast<size_t>(n_pre) * scr_cols + 2 * n_scr_pages +
                                        n_unpack * (per_group + 1)
                                  : 0;
  const size_t plan_ints =
      static_cast<size_t>(5 * T + 3 * S + 1 + 2 * num_upd) + static_cast<size_t>(S) * table_cols + quant_ints;
  const size_t sampling_offset = align256(plan_ints * 4);
  const size_t tiles_offset = sampling_offset + align256(static_cast<size_t>(S) * sizeof(SeqSampling));
  const size_t plan_bytes = tiles_offset + align256(tiles.size() * sizeof(kv::cuda::PrefillTile));
  size_t offsets[20], total = 0;
  const int group = cfg.num_q_heads / cfg.num_kv_heads;
  const int splits = attention_splits(T, static_cast<int64_t>(cfg.num_kv_heads) * (group / group_tile(group)), c->sms,
                                      cache.capacity);
  auto carve = [&](int i, size_t bytes) {
    offsets[i] = total;
    total += align256(bytes);
  };
  carve(0, plan_bytes);
  carve(1, T * H * 4);                  // x
  carve(2, T * H * es);                 // h
  carve(3, T * (QD + 2 * KVD) * 4);     // qkv
  carve(4, T * QD * es);                // attn
  carve(5, T * 2 * I * 4);              // gate_up
  carve(6, T * I * es);                 // act
  carve(7, S * H * es);                 // last
  carve(8, S * V * 4);                  // logits
  carve(9, S * V * 4);                  // probs
  carve(10, S * 4);                     // sampled
  carve(11, splits > 1 ? T * QD * splits * 4 : 0);                     // part_o
  carve(12, splits > 1 ? T * cfg.num_q_heads * splits * 4 : 0);        // part_lse
  carve(13, paged ? T * QD * es : tiles.empty() ? 0 : T * QD * 2);    // q_lowp
  const uint64_t decode_ws_bytes =
      n_dec == 0 ? 0
      : quant   ? kv::cuda::quant_decode_workspace_bytes(c->device, n_dec, cfg.num_q_heads, cfg.head_dim, dec_max_kv_len)
                : kv::cuda::paged_decode_workspace_bytes(c->device, n_dec, cfg.num_q_heads, cfg.head_dim, dec_max_kv_len);
  if (materialize) {
    const size_t need = static_cast<size_t>(n_scr_pages) * P * KVD * es * 2;
    if (need > c->scratch_bytes) {
      KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
      if (c->scratch) KV_CUDA_CHECK(cudaFree(c->scratch));
      c->scratch = nullptr;
      c->scratch_bytes = 0;
      KV_CUDA_CHECK(cudaMalloc(&c->scratch, need));
      c->scratch_bytes = need;
    }
  }
  const bool quest = paged && b.selection == KV_SELECTION_QUEST && n_dec > 0;
  const uint64_t quest_ws_bytes = quest ? kv::quest_select_workspace_bytes_for(n_dec, cfg.num_kv_heads, table_cols) : 0;
  carve(14, decode_ws_bytes);
  carve(15, quest_ws_bytes);
  carve(16, quest ? static_cast<size_t>(n_dec) * cfg.num_kv_heads * b.select_top_k * 4 : 0);  // quest_idx
  carve(17, quest ? static_cast<size_t>(n_dec) * cfg.num_kv_heads * 4 : 0);                   // quest_counts
  if (total > c->work_bytes) {
    drop_graphs(c);  // they captured the old workspace's addresses
    KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (c->work) KV_CUDA_CHECK(cudaFree(c->work));
    c->work = nullptr;
    c->work_bytes = 0;
    KV_CUDA_CHECK(cudaMalloc(&c->work, total));
    c->work_bytes = total;
  }
  const size_t result_bytes = align256(S * 4) + (b.logits ? S * V * 4 : 0);
  const size_t pinned_needed = std::max(plan_bytes, result_bytes);
  if (pinned_needed > c->pinned_bytes) {
    if (c->pinned) KV_CUDA_CHECK(cudaFreeHost(c->pinned));
    c->pinned = nullptr;
    c->pinned_bytes = 0;
    KV_CUDA_CHECK(cudaHostAlloc(&c->pinned, pinned_needed, cudaHostAllocDefault));
    c->pinned_bytes = pinned_needed;
  }
  char* base = static_cast<char*>(c->work);
  Work w;
  w.tokens = reinterpret_cast<int32_t*>(base);
  w.pos = w.tokens + T;
  w.cache_row = w.pos + T;
  w.slot_row = w.cache_row + T;
  w.last_row = w.slot_row + T;
  w.sampling = reinterpret_cast<SeqSampling*>(base + sampling_offset);
  w.tiles = reinterpret_cast<const kv::cuda::PrefillTile*>(base + tiles_offset);
  w.num_tiles = static_cast<int>(tiles.size());
  w.q_lowp = base + offsets[13];
  w.x = reinterpret_cast<float*>(base + offsets[1]);
  w.h = base + offsets[2];
  w.qkv = reinterpret_cast<float*>(base + offsets[3]);
  w.attn = base + offsets[4];
  w.gate_up = reinterpret_cast<float*>(base + offsets[5]);
  w.act = base + offsets[6];
  w.last = base + offsets[7];
  w.logits = reinterpret_cast<float*>(base + offsets[8]);
  w.probs = reinterpret_cast<float*>(base + offsets[9]);
  w.sampled = reinterpret_cast<int32_t*>(base + offsets[10]);
  w.part_o = reinterpret_cast<float*>(base + offsets[11]);
  w.part_lse = reinterpret_cast<float*>(base + offsets[12]);
  w.hist_row = w.last_row + S;
  int32_t* plan_kv_lens = w.hist_row + T;
  int32_t* plan_q_indptr = plan_kv_lens + S;
  int32_t* plan_upd_pages = plan_q_indptr + S + 1;
  int32_t* plan_upd_valid = plan_upd_pages + num_upd;
  int32_t* plan_tables = plan_upd_valid + num_upd;
  if (paged) {
    w.tables = plan_tables;
    w.table_cols = table_cols;
    w.kv_lens = plan_kv_lens;
    w.q_indptr = plan_q_indptr;
    w.upd_pages = plan_upd_pages;
    w.upd_valid = plan_upd_valid;
    w.num_upd = static_cast<int32_t>(num_upd);
    w.n_dec = n_dec;
    w.n_pre = n_pre;
    w.dec_max_kv_len = dec_max_kv_len;
    w.pre_max_q_len = pre_max_q;
    w.pre_max_kv_len = pre_max_kv;
    w.decode_ws = base + offsets[14];
    w.decode_ws_bytes = decode_ws_bytes;
    w.quest_ws = base + offsets[15];
    w.quest_ws_bytes = quest_ws_bytes;
    w.quest_idx = reinterpret_cast<int32_t*>(base + offsets[16]);
    w.quest_counts = reinterpret_cast<int32_t*>(base + offsets[17]);
  }
  // The quantized part of the plan follows the page tables (device and pinned copies alike).
  const int64_t quant_off = plan_tables + static_cast<int64_t>(S) * table_cols - w.tokens;
  if (quant) {
    int32_t* at = w.tokens + quant_off;
    w.quant = true;
    w.qtable = at;
    w.qcounts = at + static_cast<int64_t>(S) * table_cols;
    w.pack_src = w.qcounts + S;
    w.pack_dst = w.pack_src + n_pack * per_group;
    w.n_pack = static_cast<int32_t>(n_pack);
    w.materialize = materialize;
    w.scr_table = w.pack_dst + n_pack;
    w.scr_cols = scr_cols;
    w.copy_src = w.scr_table + static_cast<int64_t>(n_pre) * scr_cols;
    w.copy_dst = w.copy_src + n_scr_pages;
    w.unpack_src = w.copy_dst + n_scr_pages;
    w.unpack_dst = w.unpack_src + n_unpack;
    w.n_unpack = static_cast<int32_t>(n_unpack);
    w.n_scr_pages = static_cast<int32_t>(n_scr_pages);
    w.scr_k = c->scratch;
    w.scr_v = static_cast<char*>(c->scratch) + static_cast<size_t>(n_scr_pages) * P * KVD * es;
  }

  int32_t* host_ints = static_cast<int32_t*>(c->pinned);
  int32_t* host_hist_row = host_ints + 4 * T + S;  // as w.hist_row
  std::vector<int32_t> plan_row(static_cast<size_t>(S));  // the caller's sequence -> plan row
  if (!paged) {
    for (int32_t s = 0; s < S; ++s) {
      for (int64_t i = b.token_offset[s]; i < b.token_offset[s + 1]; ++i) {
        const int32_t position = b.start_pos[s] + static_cast<int32_t>(i - b.token_offset[s]);
        host_ints[i] = b.token_ids[i];
        host_ints[T + i] = position;
        host_ints[2 * T + i] = b.slots[s] * cache.capacity + position;
        host_ints[3 * T + i] = b.slots[s] * cache.capacity;
        host_hist_row[i] = host_ints[2 * T + i];
      }
      host_ints[4 * T + s] = static_cast<int32_t>(b.token_offset[s + 1] - 1);
      plan_row[s] = s;
    }
  } else {
    const int32_t HKV = cfg.num_kv_heads;
    int32_t* kv_lens = host_hist_row + T;
    int32_t* q_indptr = kv_lens + S;
    int32_t* upd_pages = q_indptr + S + 1;
    int32_t* upd_valid = upd_pages + num_upd;
    int32_t* tables = upd_valid + num_upd;
    int64_t row = 0, upd = 0;
    q_indptr[0] = 0;
    for (int32_t r = 0; r < S; ++r) {
      const int32_t s = order[r];
      plan_row[s] = r;
      const int32_t* table = b.page_tables + static_cast<int64_t>(s) * b.table_stride;
      const int64_t end = static_cast<int64_t>(b.start_pos[s]) + b.num_new[s];
      const int64_t pages = (end + P - 1) / P;
      for (int64_t j = 0; j < table_cols; ++j) tables[static_cast<int64_t>(r) * table_cols + j] = j < pages ? table[j] : 0;
      kv_lens[r] = static_cast<int32_t>(end);
      if (r >= n_dec) q_indptr[r - n_dec + 1] = q_indptr[r - n_dec] + b.num_new[s];
      for (int64_t j = b.start_pos[s] / P; j < pages; ++j) {
        upd_pages[upd] = table[j];
        upd_valid[upd] = static_cast<int32_t>(std::min<int64_t>(P, end - j * P));
        ++upd;
      }
      for (int32_t i = 0; i < b.num_new[s]; ++i, ++row) {
        const int32_t position = b.start_pos[s] + i;
        const int32_t page = table[position / P];
        host_ints[row] = b.token_ids[b.token_offset[s] + i];
        host_ints[T + row] = position;
        host_ints[2 * T + row] = static_cast<int32_t>((static_cast<int64_t>(page) * HKV) * P + position % P);
        host_ints[3 * T + row] = 0;
        host_hist_row[row] = static_cast<int32_t>(static_cast<int64_t>(page) * P + position % P);
      }
      host_ints[4 * T + s] = static_cast<int32_t>(row - 1);
    }
    for (int32_t r = S - n_dec + 1; r <= S; ++r) q_indptr[r] = q_indptr[S - n_dec];  // unused tail, defined
    if (quant) {
      int32_t* qtable = host_ints + quant_off;
      int32_t* qcounts = qtable + static_cast<int64_t>(S) * table_cols;
      int32_t* pack_src = qcounts + S;
      int32_t* pack_dst = pack_src + n_pack * per_group;
      int32_t* scr_table = pack_dst + n_pack;
      int32_t* copy_src = scr_table + static_cast<int64_t>(n_pre) * scr_cols;
      int32_t* copy_dst = copy_src + n_scr_pages;
      int32_t* unpack_src = copy_dst + n_scr_pages;
      int32_t* unpack_dst = unpack_src + n_unpack;
      int64_t pk = 0, scr = 0, cp = 0, up = 0;
      for (int32_t r = 0; r < S; ++r) {
        const int32_t s = order[r];
        const int32_t* table = b.page_tables + static_cast<int64_t>(s) * b.table_stride;
        const int32_t* blocks = b.quant_blocks + static_cast<int64_t>(s) * b.quant_stride;
        for (int64_t j = 0; j < table_cols; ++j)
          qtable[static_cast<int64_t>(r) * table_cols + j] = j < b.quant_before[s] ? blocks[j] : 0;
        qcounts[r] = b.quant_before[s];
        for (int32_t g = b.quant_before[s]; g < b.quant_after[s]; ++g, ++pk) {
          pack_dst[pk] = blocks[g];
          const int64_t j0 = (cache.qsink + static_cast<int64_t>(g) * QG) / P;
          for (int32_t i = 0; i < per_group; ++i) pack_src[pk * per_group + i] = table[j0 + i];
        }
        if (materialize && r >= n_dec) {
          const int64_t end = static_cast<int64_t>(b.start_pos[s]) + b.num_new[s];
          const int64_t pages = (end + P - 1) / P;
          const int64_t q0 = cache.qsink, q1 = cache.qsink + static_cast<int64_t>(b.quant_before[s]) * QG;
          int32_t* row_table = scr_table + static_cast<int64_t>(r - n_dec) * scr_cols;
          for (int64_t j = 0; j < scr_cols; ++j) row_table[j] = j < pages ? static_cast<int32_t>(scr + j) : 0;
          for (int64_t j = 0; j < pages; ++j)
            if (j * P < q0 || j * P >= q1) {
              copy_src[cp] = table[j];
              copy_dst[cp++] = static_cast<int32_t>(scr + j);
            }
          for (int32_t g = 0; g < b.quant_before[s]; ++g, ++up) {
            unpack_src[up] = blocks[g];
            for (int32_t i = 0; i < per_group; ++i)
              unpack_dst[up * per_group + i] = static_cast<int32_t>(scr + (q0 + static_cast<int64_t>(g) * QG) / P + i);
          }
          scr += pages;
        }
      }
      w.n_copy = static_cast<int32_t>(cp);
    }
  }
  if (!tiles.empty())
    std::memcpy(static_cast<char*>(c->pinned) + tiles_offset, tiles.data(), tiles.size() * sizeof(tiles[0]));
  auto* host_sampling = reinterpret_cast<SeqSampling*>(static_cast<char*>(c->pinned) + sampling_offset);
  for (int32_t s = 0; s < S; ++s) {
    SeqSampling& sp = host_sampling[s];
    sp.temperature = b.temperature ? b.temperature[s] : 0.f;
    sp.top_k = b.top_k ? b.top_k[s] : 0;
    sp.top_p = b.top_p ? b.top_p[s] : 1.f;
    sp.min_p = b.min_p ? b.min_p[s] : 0.f;
    sp.repetition_penalty = b.repetition_penalty ? b.repetition_penalty[s] : 1.f;
    sp.slot = paged ? plan_row[s] : b.slots[s];
    sp.length = b.start_pos[s] + b.num_new[s];
    sp.pad = 0;
    sp.seed = b.seed ? b.seed[s] : 0;
    sp.request_id = b.request_id ? b.request_id[s] : 0;
  }
  KV_CUDA_CHECK(cudaMemcpyAsync(base, c->pinned, plan_bytes, cudaMemcpyHostToDevice, c->stream));
  StageMarks marks{c, c->profiling, {}, {}};
  marks.mark(-1);
  if (m.wdtype == KV_DTYPE_BF16) launch_step<uint16_t>(c, m, cache, b, w, marks);
  else launch_step<float>(c, m, cache, b, w, marks);
  if (w.n_pack > 0) {
    // Groups that left the bf16 window: packed after the step (outside any graph, since their
    // number varies), layer by layer; the next step reads the blocks in stream order.
    const size_t layer_elems = static_cast<size_t>(cache.num_pages) * P * KVD;
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      QuantPackArgs pk;
      pk.dtype = m.wdtype;
      pk.src.k = static_cast<char*>(cache.k) + l * layer_elems * es;
      pk.src.v = static_cast<char*>(cache.v) + l * layer_elems * es;
      pk.src.num_pages = cache.num_pages;
      pk.src.page_tokens = static_cast<int32_t>(P);
      pk.src.num_kv_heads = cfg.num_kv_heads;
      pk.src.head_dim = cfg.head_dim;
      pk.src.page_stride = static_cast<int64_t>(cfg.num_kv_heads) * P * cfg.head_dim;
      pk.src.head_stride = P * cfg.head_dim;
      pk.src.token_stride = cfg.head_dim;
      pk.src_pages = w.pack_src;
      pk.dst_blocks = w.pack_dst;
      pk.num_jobs = w.n_pack;
      pk.dst = quant_layer(cache, l, cfg.num_kv_heads);
      kv::cuda::quant_pack(&c->ops, pk);
    }
  }
  char* results = static_cast<char*>(c->pinned);
  if (b.sampled) KV_CUDA_CHECK(cudaMemcpyAsync(results, w.sampled, S * 4, cudaMemcpyDeviceToHost, c->stream));
  if (b.logits)
    KV_CUDA_CHECK(cudaMemcpyAsync(results + align256(S * 4), w.logits, S * V * 4, cudaMemcpyDeviceToHost, c->stream));
  KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
  check_device_errors(c);
  if (b.sampled) std::memcpy(b.sampled, results, S * 4);
  if (b.logits) std::memcpy(b.logits, results + align256(S * 4), S * V * 4);
  if (marks.on) {
    ProfileTotals& t = c->totals[T == S ? 0 : 1];
    for (size_t i = 1; i < marks.marks.size(); ++i) {
      float ms = 0.f;
      KV_CUDA_CHECK(cudaEventElapsedTime(&ms, marks.marks[i - 1].second, marks.marks[i].second));
      t.ms[marks.marks[i].first] += ms;
      t.launch_ms[marks.marks[i].first] +=
          std::chrono::duration<double, std::milli>(marks.host[i] - marks.host[i - 1]).count();
      ++t.calls[marks.marks[i].first];
    }
    ++t.steps;
    t.host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start).count();
  }
}

}  // namespace kv::model::cuda
