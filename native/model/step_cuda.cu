// One forward step of the model on CUDA for a batch of sequences, then sampling on the device.
//
// Activations are fp32 [tokens][features]; matrix products go through cuBLAS (bf16 or fp32
// inputs, fp32 accumulation, fp32 outputs; the residual stream is accumulated in place with
// beta = 1). Own kernels do the rest: embedding, RMSNorm, bias + q/k norm + RoPE + KV append,
// causal attention over each sequence's cache slot, SwiGLU, and the sampler. The host builds
// the step plan once, copies it to the device in one transfer and reads back the sampled tokens.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cuda/attention_state.cuh"
#include "cuda/cublas_loader.h"
#include "cuda/cuda_common.cuh"
#include "model/model_cuda.h"
#include "model/philox.h"

namespace kv::model::cuda {

using kv::cuda::DeviceGuard;
using kv::cuda::kNegInf;
using kv::cuda::SoftmaxState;
using kv::cuda::throw_cuda;
namespace blas = kv::cuda::blas;

struct Context {
  int32_t device = 0;
  cudaStream_t stream = nullptr;
  blas::Handle blas = nullptr;
  void* work = nullptr;  // device workspace of a step, grown on demand
  size_t work_bytes = 0;
  void* pinned = nullptr;  // host staging of the plan and the results
  size_t pinned_bytes = 0;
};

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

// ----------------------------------------------------------------------------- kernels

template <typename TW>
__global__ void embed_kernel(const int32_t* tokens, const TW* embed, float* x, int h) {
  const int64_t t = blockIdx.x;
  const TW* row = embed + static_cast<int64_t>(tokens[t]) * h;
  for (int i = threadIdx.x; i < h; i += blockDim.x) x[t * h + i] = load(row, i);
}

// out[r] = x[rows ? rows[r] : r] * rsqrt(mean(x^2) + eps) * w, as transformers' LlamaRMSNorm.
template <typename TOut>
__global__ void rms_norm_kernel(const float* x, const int32_t* rows, const float* w, TOut* out, int h, float eps) {
  const int64_t r = blockIdx.x;
  const float* xr = x + static_cast<int64_t>(rows ? rows[r] : r) * h;
  float ss = 0.f;
  for (int i = threadIdx.x; i < h; i += blockDim.x) ss += xr[i] * xr[i];
  const float inv = rsqrtf(block_sum(ss) / h + eps);
  for (int i = threadIdx.x; i < h; i += blockDim.x) store(out, r * h + i, xr[i] * inv * w[i]);
}

// Per (token, head): bias; for q and k heads the per-head RMSNorm (Qwen3) and RoPE; k and v
// heads go into the cache at the token's (slot, position). One thread per rotation pair.
template <typename TKV>
__global__ void qkv_post_kernel(float* qkv, const float* bias, const float* q_norm, const float* k_norm,
                                const float* inv_freq, const int32_t* pos, const int32_t* cache_row, TKV* k_layer,
                                TKV* v_layer, int hq, int hkv, int d, int qkv_width, int qk_norm, float eps) {
  const int64_t t = blockIdx.x;
  const int hd = blockIdx.y;
  const int half = d / 2, i = threadIdx.x;
  float* row = qkv + t * qkv_width + static_cast<int64_t>(hd) * d;
  float x1 = row[i], x2 = row[i + half];
  if (bias) {
    x1 += bias[hd * d + i];
    x2 += bias[hd * d + i + half];
  }
  const int64_t kv_width = static_cast<int64_t>(hkv) * d;
  if (hd >= hq + hkv) {  // a v head: straight into the cache
    TKV* dst = v_layer + static_cast<int64_t>(cache_row[t]) * kv_width + static_cast<int64_t>(hd - hq - hkv) * d;
    store(dst, i, x1);
    store(dst, i + half, x2);
    return;
  }
  if (qk_norm) {
    const float inv = rsqrtf(block_sum(x1 * x1 + x2 * x2) / d + eps);
    const float* w = hd < hq ? q_norm : k_norm;
    x1 = x1 * inv * w[i];
    x2 = x2 * inv * w[i + half];
  }
  // angle = position * inv_freq in fp32 (one rounding), accurate sin and cos of it.
  const float angle = static_cast<float>(pos[t]) * inv_freq[i];
  float sn, cs;
  sincosf(angle, &sn, &cs);
  const float y1 = x1 * cs - x2 * sn, y2 = x2 * cs + x1 * sn;
  if (hd < hq) {
    row[i] = y1;
    row[i + half] = y2;
  } else {
    TKV* dst = k_layer + static_cast<int64_t>(cache_row[t]) * kv_width + static_cast<int64_t>(hd - hq) * d;
    store(dst, i, y1);
    store(dst, i + half, y2);
  }
}

constexpr int kAttnWarps = 4;
constexpr int kAttnThreads = kAttnWarps * 32;

// Causal attention of token t over its slot's positions [0, pos[t]] for a tile of G query
// heads of one KV head: groups of L lanes share a position (8 channels a lane), online
// softmax in base 2, the block's lane groups merged with the state merge at the end.
template <typename TKV, typename TOut, int D, int G>
__global__ void __launch_bounds__(kAttnThreads) attention_kernel(const float* qkv, int qkv_width, const TKV* k_layer,
                                                                 const TKV* v_layer, const int32_t* slot_row,
                                                                 const int32_t* pos, TOut* out, int hq, int hkv,
                                                                 int group, int group_tiles, float scale_log2) {
  constexpr int L = D / 8 < 32 ? D / 8 : 32, E = D / L, TPW = 32 / L, PARTS = kAttnWarps * TPW;
  __shared__ float s_acc[PARTS][G][D];
  __shared__ float s_m[PARTS][G];
  __shared__ float s_l[PARTS][G];
  const int64_t t = blockIdx.x;
  const int tile = blockIdx.y % group_tiles, kvh = blockIdx.y / group_tiles;
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
  for (int64_t p0 = 0; p0 < len; p0 += PARTS) {
    const int64_t p = p0 + warp * TPW + tg;
    const bool valid = p < len;
    float kx[E], vx[E];
#pragma unroll
    for (int e = 0; e < E; ++e) {
      kx[e] = valid ? load(k_layer, base + p * kv_width + e) : 0.f;
      vx[e] = valid ? load(v_layer, base + p * kv_width + e) : 0.f;
    }
#pragma unroll
    for (int h = 0; h < G; ++h) {
      float dot = 0.f;
#pragma unroll
      for (int e = 0; e < E; ++e) dot = fmaf(q[h][e], kx[e], dot);
#pragma unroll
      for (int off = L / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
      if (!valid) continue;
      const float m_new = fmaxf(st[h].m, dot);
      const float factor = st[h].rescale_to(m_new);
      const float pc = exp2f(dot - m_new);
      st[h].l += pc;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[h][e] = fmaf(pc, vx[e], acc[h][e] * factor);
    }
  }
  kv::cuda::publish_part<PARTS, G, D, E>(s_acc, s_m, s_l, part, sl, acc, st);
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += kAttnThreads) {
    const int h = idx / D, d = idx % D;
    SoftmaxState merged;
    const float o = kv::cuda::merge_parts<PARTS, G, D>(s_acc, s_m, s_l, h, d, &merged);
    store(out, t * static_cast<int64_t>(hq) * D + static_cast<int64_t>(h0 + h) * D + d, o);
  }
}

template <typename TOut>
__global__ void silu_mul_kernel(const float* gate_up, TOut* act, int64_t tokens, int inter) {
  const int64_t n = tokens * inter;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / inter, i = idx - t * inter;
    const float g = gate_up[t * 2 * inter + i], u = gate_up[t * 2 * inter + inter + i];
    store(act, idx, g / (1.f + expf(-g)) * u);
  }
}

__global__ void history_kernel(const int32_t* tokens, const int32_t* cache_row, int32_t* history, int64_t n) {
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
  int32_t top_k, slot, length, pad;
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
__global__ void __launch_bounds__(1024) sample_kernel(const float* logits, float* work, int vocab,
                                                      const int32_t* history, int capacity, const SeqSampling* seqs,
                                                      int32_t* sampled) {
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
    const int32_t* hist = history + static_cast<int64_t>(sp.slot) * capacity;
    for (int i = threadIdx.x; i < sp.length; i += blockDim.x) atomicOr(&seen[hist[i] >> 5], 1u << (hist[i] & 31));
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

template <typename TKV, typename TOut, int D>
void launch_attention_d(int g_tile, dim3 grid, cudaStream_t stream, const float* qkv, int qkv_width, const TKV* k,
                        const TKV* v, const int32_t* slot_row, const int32_t* pos, TOut* out, int hq, int hkv,
                        int group, int tiles, float scale_log2) {
  switch (g_tile) {
    case 8:
      attention_kernel<TKV, TOut, D, 8><<<grid, kAttnThreads, 0, stream>>>(qkv, qkv_width, k, v, slot_row, pos, out, hq,
                                                                           hkv, group, tiles, scale_log2);
      break;
    case 4:
      attention_kernel<TKV, TOut, D, 4><<<grid, kAttnThreads, 0, stream>>>(qkv, qkv_width, k, v, slot_row, pos, out, hq,
                                                                           hkv, group, tiles, scale_log2);
      break;
    case 2:
      attention_kernel<TKV, TOut, D, 2><<<grid, kAttnThreads, 0, stream>>>(qkv, qkv_width, k, v, slot_row, pos, out, hq,
                                                                           hkv, group, tiles, scale_log2);
      break;
    default:
      attention_kernel<TKV, TOut, D, 1><<<grid, kAttnThreads, 0, stream>>>(qkv, qkv_width, k, v, slot_row, pos, out, hq,
                                                                           hkv, group, tiles, scale_log2);
  }
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
};

template <typename TW>
void run_step(Context* c, kv_model& m, kv_kv_cache& cache, const StepBatch& b, const Work& w) {
  const kv_model_config& cfg = m.cfg;
  const int64_t T = b.num_tokens, S = b.num_seqs, H = cfg.hidden_size, D = cfg.head_dim, HQ = cfg.num_q_heads,
                HKV = cfg.num_kv_heads, QD = HQ * D, KVD = HKV * D, QKV = QD + 2 * KVD, I = cfg.intermediate_size,
                V = cfg.vocab_size;
  const kv_dtype dt = m.wdtype;
  const int blas_type = dt == KV_DTYPE_BF16 ? blas::kR16BF : blas::kR32F;
  const blas::Api& api = blas::api();
  auto gemm = [&](const void* a, const void* weight, float* out, int64_t rows, int64_t k, int64_t n, float beta) {
    const float alpha = 1.f;
    // Row-major out[rows][n] = a[rows][k] * weight[n][k]^T is, column-major, out^T = weight^T(op T) * a^T.
    blas::check(api.gemm_ex(c->blas, blas::kOpT, blas::kOpN, static_cast<int>(n), static_cast<int>(rows),
                            static_cast<int>(k), &alpha, weight, blas_type, static_cast<int>(k), a, blas_type,
                            static_cast<int>(k), &beta, out, blas::kR32F, static_cast<int>(n), blas::kCompute32F,
                            blas::kGemmDefault),
                "cublasGemmEx");
  };
  const cudaStream_t st = c->stream;
  const int norm_threads = H >= 1024 ? 1024 : 256;
  history_kernel<<<static_cast<unsigned>((T + 255) / 256), 256, 0, st>>>(w.tokens, w.cache_row, static_cast<int32_t*>(cache.device_history), T);
  embed_kernel<TW><<<static_cast<unsigned>(T), kThreads, 0, st>>>(w.tokens, static_cast<const TW*>(m.embed.data), w.x,
                                                                static_cast<int>(H));
  KV_CUDA_CHECK_LAUNCH();
  const int group = static_cast<int>(HQ / HKV), tile = group_tile(group), tiles = group / tile;
  const float scale_log2 = kv::cuda::kLog2e / sqrtf(static_cast<float>(D));
  const size_t layer_elems = static_cast<size_t>(cache.num_slots) * cache.capacity * KVD;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const Layer& L = m.layers[l];
    TW* k_layer = static_cast<TW*>(cache.k) + l * layer_elems;
    TW* v_layer = static_cast<TW*>(cache.v) + l * layer_elems;
    rms_norm_kernel<TW><<<static_cast<unsigned>(T), norm_threads, 0, st>>>(
        w.x, nullptr, static_cast<const float*>(L.attn_norm.data), static_cast<TW*>(w.h), static_cast<int>(H),
        cfg.rms_norm_eps);
    gemm(w.h, L.qkv.data, w.qkv, T, H, QKV, 0.f);
    qkv_post_kernel<TW><<<dim3(static_cast<unsigned>(T), static_cast<unsigned>(HQ + 2 * HKV)), static_cast<unsigned>(D / 2),
                          0, st>>>(w.qkv, static_cast<const float*>(L.qkv_bias.data),
                                   static_cast<const float*>(L.q_norm.data), static_cast<const float*>(L.k_norm.data),
                                   m.device_inv_freq, w.pos, w.cache_row, k_layer, v_layer, static_cast<int>(HQ),
                                   static_cast<int>(HKV), static_cast<int>(D), static_cast<int>(QKV), cfg.qk_norm,
                                   cfg.rms_norm_eps);
    const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(HKV * tiles));
    switch (D) {
      case 64:
        launch_attention_d<TW, TW, 64>(tile, grid, st, w.qkv, static_cast<int>(QKV), k_layer, v_layer, w.slot_row, w.pos,
                                       static_cast<TW*>(w.attn), static_cast<int>(HQ), static_cast<int>(HKV), group,
                                       tiles, scale_log2);
        break;
      case 128:
        launch_attention_d<TW, TW, 128>(tile, grid, st, w.qkv, static_cast<int>(QKV), k_layer, v_layer, w.slot_row,
                                        w.pos, static_cast<TW*>(w.attn), static_cast<int>(HQ), static_cast<int>(HKV),
                                        group, tiles, scale_log2);
        break;
      default:
        launch_attention_d<TW, TW, 256>(tile, grid, st, w.qkv, static_cast<int>(QKV), k_layer, v_layer, w.slot_row,
                                        w.pos, static_cast<TW*>(w.attn), static_cast<int>(HQ), static_cast<int>(HKV),
                                        group, tiles, scale_log2);
    }
    KV_CUDA_CHECK_LAUNCH();
    gemm(w.attn, L.o.data, w.x, T, QD, H, 1.f);  // the residual: x += attn o_proj^T
    rms_norm_kernel<TW><<<static_cast<unsigned>(T), norm_threads, 0, st>>>(
        w.x, nullptr, static_cast<const float*>(L.mlp_norm.data), static_cast<TW*>(w.h), static_cast<int>(H),
        cfg.rms_norm_eps);
    gemm(w.h, L.gate_up.data, w.gate_up, T, H, 2 * I, 0.f);
    silu_mul_kernel<TW><<<std::min<int64_t>((T * I + 255) / 256, 65535), 256, 0, st>>>(w.gate_up, static_cast<TW*>(w.act),
                                                                                       T, static_cast<int>(I));
    gemm(w.act, L.down.data, w.x, T, I, H, 1.f);
    KV_CUDA_CHECK_LAUNCH();
  }
  rms_norm_kernel<TW><<<static_cast<unsigned>(S), norm_threads, 0, st>>>(
      w.x, w.last_row, static_cast<const float*>(m.final_norm.data), static_cast<TW*>(w.last), static_cast<int>(H),
      cfg.rms_norm_eps);
  gemm(w.last, cfg.tie_word_embeddings ? m.embed.data : m.lm_head.data, w.logits, S, H, V, 0.f);
  if (b.sampled) {
    const size_t seen_bytes = b.repetition_penalty ? (static_cast<size_t>(V) + 31) / 32 * 4 : 0;
    if (seen_bytes > 48 * 1024)
      KV_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(seen_bytes)));
    sample_kernel<<<static_cast<unsigned>(S), 1024, seen_bytes, st>>>(w.logits, w.probs, static_cast<int>(V),
                                                                     static_cast<int32_t*>(cache.device_history),
                                                                     cache.capacity, w.sampling, w.sampled);
  }
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace

Context* create_context(int32_t device) {
  DeviceGuard guard(device);
  const blas::Api& api = blas::api();  // fails here, clearly, when cuBLAS is missing
  auto* c = new Context{};
  c->device = device;
  cudaError_t err = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
  if (err != cudaSuccess) {
    delete c;
    throw_cuda(err, "cudaStreamCreateWithFlags", __FILE__, __LINE__);
  }
  try {
    blas::check(api.create(&c->blas), "cublasCreate");
    blas::check(api.set_stream(c->blas, c->stream), "cublasSetStream");
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
  if (c->blas) (void)blas::api().destroy(c->blas);
  if (c->work) (void)cudaFree(c->work);
  if (c->pinned) (void)cudaFreeHost(c->pinned);
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

void step(kv_model& m, kv_kv_cache& cache, const StepBatch& b) {
  Context* c = m.cuda;
  DeviceGuard guard(c->device);
  const kv_model_config& cfg = m.cfg;
  const int64_t T = b.num_tokens, S = b.num_seqs, H = cfg.hidden_size, QD = static_cast<int64_t>(cfg.num_q_heads) * cfg.head_dim,
                KVD = static_cast<int64_t>(cfg.num_kv_heads) * cfg.head_dim, I = cfg.intermediate_size,
                V = cfg.vocab_size;
  const size_t es = m.wdtype == KV_DTYPE_BF16 ? 2 : 4;

  // The plan (integers and sampling parameters) is staged in pinned memory and copied once.
  const size_t plan_ints = static_cast<size_t>(4 * T + S);
  const size_t plan_bytes = align256(plan_ints * 4) + align256(static_cast<size_t>(S) * sizeof(SeqSampling));
  size_t offsets[16], total = 0;
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
  if (total > c->work_bytes) {
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
  w.sampling = reinterpret_cast<SeqSampling*>(base + align256(plan_ints * 4));
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

  int32_t* host_ints = static_cast<int32_t*>(c->pinned);
  for (int32_t s = 0; s < S; ++s) {
    for (int64_t i = b.token_offset[s]; i < b.token_offset[s + 1]; ++i) {
      const int32_t position = b.start_pos[s] + static_cast<int32_t>(i - b.token_offset[s]);
      host_ints[i] = b.token_ids[i];
      host_ints[T + i] = position;
      host_ints[2 * T + i] = b.slots[s] * cache.capacity + position;
      host_ints[3 * T + i] = b.slots[s] * cache.capacity;
    }
    host_ints[4 * T + s] = static_cast<int32_t>(b.token_offset[s + 1] - 1);
  }
  auto* host_sampling = reinterpret_cast<SeqSampling*>(static_cast<char*>(c->pinned) + align256(plan_ints * 4));
  for (int32_t s = 0; s < S; ++s) {
    SeqSampling& sp = host_sampling[s];
    sp.temperature = b.temperature ? b.temperature[s] : 0.f;
    sp.top_k = b.top_k ? b.top_k[s] : 0;
    sp.top_p = b.top_p ? b.top_p[s] : 1.f;
    sp.min_p = b.min_p ? b.min_p[s] : 0.f;
    sp.repetition_penalty = b.repetition_penalty ? b.repetition_penalty[s] : 1.f;
    sp.slot = b.slots[s];
    sp.length = b.start_pos[s] + b.num_new[s];
    sp.pad = 0;
    sp.seed = b.seed ? b.seed[s] : 0;
    sp.request_id = b.request_id ? b.request_id[s] : 0;
  }
  KV_CUDA_CHECK(cudaMemcpyAsync(base, c->pinned, plan_bytes, cudaMemcpyHostToDevice, c->stream));
  if (m.wdtype == KV_DTYPE_BF16) run_step<uint16_t>(c, m, cache, b, w);
  else run_step<float>(c, m, cache, b, w);
  char* results = static_cast<char*>(c->pinned);
  if (b.sampled) KV_CUDA_CHECK(cudaMemcpyAsync(results, w.sampled, S * 4, cudaMemcpyDeviceToHost, c->stream));
  if (b.logits)
    KV_CUDA_CHECK(cudaMemcpyAsync(results + align256(S * 4), w.logits, S * V * 4, cudaMemcpyDeviceToHost, c->stream));
  KV_CUDA_CHECK(cudaStreamSynchronize(c->stream));
  if (b.sampled) std::memcpy(b.sampled, results, S * 4);
  if (b.logits) std::memcpy(b.logits, results + align256(S * 4), S * V * 4);
}

}  // namespace kv::model::cuda
