// Quantized KV blocks on CUDA: pack (quantize a group of G tokens when it leaves the bf16
// window), unpack (dequantize into pages: prefill over a quantized prefix, tests) and the fused
// decode attention over quantized blocks and bf16 pages.
//
// Pack and unpack: one block of threads per (job, KV head), with the group staged in shared
// memory as fp32. Every number comes from core/quant_kv.h in the order the CPU computes it (one
// thread per channel sums |k| over the tokens in token order, IEEE division and rint), so the
// bytes equal the CPU's; each thread then assembles whole 32-bit words of a plane from the inverse
// of the plane's index map, so no two threads write the same word.
//
// Decode (bf16, head_dim 64 or 128, G = 128). A block of 4 warps owns (sequence, KV head, tile
// of up to 8 query heads of the GQA group, split of the sequence's segments). A segment is a
// quantized block (128 tokens) or 16 tokens of the bf16 pages (the sink and the newest tokens),
// and every warp walks its own segments (every 4th of the split's) with its own online softmax
// and its own two-stage cp.async pipeline in shared memory, so there is no block-wide barrier
// until the end, where the four warp states and then the splits are merged with the state merge
// (attention_state.cuh). The logits never leave registers.
//
// The roles of mma.m16n8k16 are swapped relative to the bf16 paged decode: the 16 rows are
// tokens (keys) or channels (values), the 8 columns the query heads, so the GQA group of 4 wastes
// half of each MMA rather than three quarters, and the packed codes are the A operand:
//   S^T [tokens][heads]   = codes_K [tokens][channels] x Q'^T [channels][heads]  (+ q . min)
//   O^T [channels][heads] += codes_V^T [channels][tokens] x P'^T [tokens][heads] (+ sum p * min)
// with Q' = q * sm_scale * log2(e) * k_scale (per channel of the block) and P' = p * v_scale (per
// token), both in fp16, and the codes converted exactly to fp16 (0..3). The high 2 bits of the
// boosted channels are one more k-step (or two) against 4 * Q' of those channels. The planes are
// stored in the A fragments' order (core/quant_kv.h), so each lane reads its fragment codes with
// one 16-byte shared-memory load per 16 x 128 tile and converts 2 codes per lop3 + fma.f16x2
// (the fp16 magic-number trick, codes at bit 2p of each 16-bit half: 0x6400 | code << 2p is
// 1024 + code * 4^p). The transposes between the S^T accumulators and the P'^T operand are
// movmatrix (no shared memory). Q' is scaled per block by a power of two so that its largest
// entry sits in [2^14, 2^15): fp16 can neither overflow nor lose the small scales.
// bf16 segments take the same path with bf16 MMAs: K by ldmatrix, V^T by ldmatrix.trans, q exact
// in bf16, and P split into bf16 hi + lo parts (the paged decode's precision).
#include "cuda/quant_kv.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "cuda/attention_prefill_kernel.cuh"
#include "cuda/attention_state.cuh"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

namespace pt = prefill_tc;

constexpr int kPackThreads = 256;

__device__ __forceinline__ float load_as_float(const uint16_t* p, int64_t i) { return bf16_bits_to_float(p[i]); }
__device__ __forceinline__ float load_as_float(const float* p, int64_t i) { return p[i]; }

__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

// ----------------------------------------------------------------------------- pack

// Words of one plane (R x C codes, C a multiple of 16) built by the block's threads: code i of
// each word comes from code_of(row, col).
template <typename CodeOf>
__device__ __forceinline__ void build_plane(uint8_t* plane, int32_t R, int32_t C, CodeOf code_of) {
  const int32_t ksteps = C / 16;
  if (ksteps % 2 == 0) {
    const int32_t words_per_unit = C / 32, words = R / 16 * 32 * words_per_unit;
    for (int32_t wi = threadIdx.x; wi < words; wi += blockDim.x) {
      const int32_t unit = wi / words_per_unit, w = wi % words_per_unit;
      const int32_t mt = unit / 32, lane = unit % 32;
      uint32_t word = 0;
      for (int32_t i = 0; i < 16; ++i) {
        int32_t row, col;
        quant::word_code(mt, lane, w, i, true, &row, &col);
        word |= (code_of(row, col) & 3u) << ((i / 8) * 16 + (i % 8) * 2);
      }
      reinterpret_cast<uint32_t*>(plane)[wi] = word;
    }
  } else {  // C = 16: one 16-bit unit per (m-tile, lane)
    const int32_t units = R / 16 * 32;
    for (int32_t u = threadIdx.x; u < units; u += blockDim.x) {
      const int32_t mt = u / 32, lane = u % 32;
      uint32_t bits = 0;
      for (int32_t i = 0; i < 8; ++i) {
        int32_t row, col;
        quant::word_code(mt, lane, 0, i, false, &row, &col);
        bits |= (code_of(row, col) & 3u) << ((i / 4) * 8 + (i % 4) * 2);
      }
      reinterpret_cast<uint16_t*>(plane)[u] = static_cast<uint16_t>(bits);
    }
  }
}

// Shared memory of the pack kernel: the group [G][D] fp32, then per channel / token statistics.
template <typename T>
__global__ void __launch_bounds__(kPackThreads) quant_pack_kernel(QuantPackArgs a, DeviceErrorRecord* err) {
  extern __shared__ float4 pack_smem[];
  const quant::QuantKv& q = a.dst;
  const int32_t G = q.group_tokens, D = q.head_dim, P = a.src.page_tokens, nb = q.boost_channels;
  const int32_t nbp = quant::boost_slots(nb);
  const int32_t job = blockIdx.x, h = blockIdx.y;
  float* x = reinterpret_cast<float*>(pack_smem);  // [G][D]
  float* sum_abs = x + G * D;                      // [D]
  float* scale = sum_abs + D;                      // [max(G, D)]
  float* lo = scale + 256;                         // [max(G, D)]
  int32_t* slot = reinterpret_cast<int32_t*>(lo + 256);  // [D]
  __shared__ int s_bad;
  const int32_t per_job = G / P;
  if (threadIdx.x == 0) {
    s_bad = 0;
    const int32_t blk = a.dst_blocks[job];
    if (blk < 0 || blk >= q.num_blocks) {
      record_device_error(err, kDeviceErrorBlockIdOutOfRange, job, blk, q.num_blocks);
      s_bad = 1;
    }
  }
  __syncthreads();
  // Page ids: checked once, then read from shared memory (at most 256 / P <= 256 of them).
  __shared__ int32_t s_page_ids[256];
  for (int32_t i = threadIdx.x; i < per_job; i += blockDim.x) {
    const int64_t flat = static_cast<int64_t>(job) * per_job + i;
    const int32_t page = a.src_pages[flat];
    if (page < 0 || page >= a.src.num_pages) {
      record_device_error(err, kDeviceErrorPageIdOutOfRange, flat, page, a.src.num_pages);
      atomicExch(&s_bad, 1);
    }
    s_page_ids[i] = page;
  }
  __syncthreads();
  if (s_bad) return;
  uint8_t* out = static_cast<uint8_t*>(q.blocks) + q.offset(a.dst_blocks[job], h);
  const quant::Layout& L = q.layout;

  // ---- keys
  for (int32_t i = threadIdx.x; i < G * D; i += blockDim.x) {
    const int32_t t = i / D, d = i % D;
    x[i] = load_as_float(static_cast<const T*>(a.src.k), a.src.offset(s_page_ids[t / P], h, t % P) + d);
  }
  __syncthreads();
  for (int32_t d = threadIdx.x; d < D; d += blockDim.x) {
    float s = 0.f, mn = __int_as_float(0x7f800000), mx = -mn;
    bool nan = false;
    for (int32_t t = 0; t < G; ++t) {  // token order: the CPU's sums, bit for bit
      const float v = x[t * D + d];
      s += fabsf(v);
      nan |= quant::is_nan(v);
      mn = v < mn ? v : mn;  // std::min(mn, v)
      mx = mx < v ? v : mx;  // std::max(mx, v)
    }
    sum_abs[d] = s;
    scale[d] = mn;  // staged: min and max until the grid is made
    lo[d] = nan ? __int_as_float(0x7fc00000) : mx;
  }
  __syncthreads();
  for (int32_t d = threadIdx.x; d < D; d += blockDim.x)
    slot[d] = quant::boost_rank(sum_abs, D, d) < nb ? 1 : -1;
  __syncthreads();
  for (int32_t d = threadIdx.x; d < D; d += blockDim.x) {
    int32_t s = -1;
    if (slot[d] > 0) {
      s = 0;
      for (int32_t e = 0; e < d; ++e) s += slot[e] > 0 ? 1 : 0;
    }
    const float mn = scale[d], mx_or_nan = lo[d];
    const bool nan = quant::is_nan(mx_or_nan);
    const int32_t levels = s >= 0 ? 15 : 3;
    const quant::Grid g = quant::make_grid(mn, nan ? 0.f : mx_or_nan, nan, levels);
    reinterpret_cast<uint16_t*>(out + L.k_scale)[d] = g.scale;
    reinterpret_cast<uint16_t*>(out + L.k_min)[d] = g.min;
    sum_abs[d] = static_cast<float>(s);  // the slot, once every thread has its rank
    scale[d] = quant::half_to_float(g.scale);
    lo[d] = quant::half_to_float(g.min);
  }
  __syncthreads();
  for (int32_t d = threadIdx.x; d < D; d += blockDim.x) slot[d] = static_cast<int32_t>(sum_abs[d]);
  for (int32_t j = threadIdx.x; j < nbp; j += blockDim.x) out[L.boost + j] = quant::kNoChannel;
  __syncthreads();
  for (int32_t d = threadIdx.x; d < D; d += blockDim.x)
    if (slot[d] >= 0) out[L.boost + slot[d]] = static_cast<uint8_t>(d);
  __syncthreads();
  auto k_code = [&](int32_t t, int32_t d) {
    return quant::quantize(x[t * D + d], scale[d], lo[d], slot[d] >= 0 ? 15 : 3);
  };
  build_plane(out + L.k_low, G, D, [&](int32_t t, int32_t d) { return k_code(t, d) & 3u; });
  if (nbp > 0) {
    const uint8_t* boost = out + L.boost;
    build_plane(out + L.k_high, G, nbp, [&](int32_t t, int32_t j) {
      const uint8_t d = boost[j];
      return d == quant::kNoChannel ? 0u : k_code(t, d) >> 2;
    });
  }
  __syncthreads();

  // ---- values
  for (int32_t i = threadIdx.x; i < G * D; i += blockDim.x) {
    const int32_t t = i / D, d = i % D;
    x[i] = load_as_float(static_cast<const T*>(a.src.v), a.src.offset(s_page_ids[t / P], h, t % P) + d);
  }
  __syncthreads();
  for (int32_t t = threadIdx.x; t < G; t += blockDim.x) {
    float mn = __int_as_float(0x7f800000), mx = -mn;
    bool nan = false;
    for (int32_t d = 0; d < D; ++d) {
      const float v = x[t * D + d];
      nan |= quant::is_nan(v);
      mn = v < mn ? v : mn;
      mx = mx < v ? v : mx;
    }
    const quant::Grid g = quant::make_grid(mn, mx, nan, 3);
    reinterpret_cast<uint16_t*>(out + L.v_scale)[t] = g.scale;
    reinterpret_cast<uint16_t*>(out + L.v_min)[t] = g.min;
    scale[t] = quant::half_to_float(g.scale);
    lo[t] = quant::half_to_float(g.min);
  }
  __syncthreads();
  build_plane(out + L.v_codes, D, G, [&](int32_t d, int32_t t) { return quant::quantize(x[t * D + d], scale[t], lo[t], 3); });
}

// ----------------------------------------------------------------------------- unpack

template <typename T>
__global__ void __launch_bounds__(kPackThreads) quant_unpack_kernel(QuantUnpackArgs a, DeviceErrorRecord* err) {
  const quant::QuantKv& q = a.src;
  const int32_t G = q.group_tokens, D = q.head_dim, P = a.dst.page_tokens;
  const int32_t nbp = quant::boost_slots(q.boost_channels);
  const int32_t job = blockIdx.x, h = blockIdx.y, per_job = G / P;
  __shared__ int s_bad;
  __shared__ int32_t s_page_ids[256];
  __shared__ int32_t s_slot[128];
  if (threadIdx.x == 0) {
    s_bad = 0;
    const int32_t blk = a.src_blocks[job];
    if (blk < 0 || blk >= q.num_blocks) {
      record_device_error(err, kDeviceErrorBlockIdOutOfRange, job, blk, q.num_blocks);
      s_bad = 1;
    }
  }
  for (int32_t d = threadIdx.x; d < D; d += blockDim.x) s_slot[d] = -1;
  __syncthreads();
  for (int32_t i = threadIdx.x; i < per_job; i += blockDim.x) {
    const int64_t flat = static_cast<int64_t>(job) * per_job + i;
    const int32_t page = a.dst_pages[flat];
    if (page < 0 || page >= a.dst.num_pages) {
      record_device_error(err, kDeviceErrorPageIdOutOfRange, flat, page, a.dst.num_pages);
      atomicExch(&s_bad, 1);
    }
    s_page_ids[i] = page;
  }
  if (s_bad == 0) {
    const uint8_t* in = static_cast<const uint8_t*>(q.blocks) + q.offset(a.src_blocks[job], h);
    for (int32_t j = threadIdx.x; j < nbp; j += blockDim.x) {
      const uint8_t d = in[q.layout.boost + j];
      if (d != quant::kNoChannel && d < D) s_slot[d] = j;
    }
  }
  __syncthreads();
  if (s_bad) return;
  const uint8_t* in = static_cast<const uint8_t*>(q.blocks) + q.offset(a.src_blocks[job], h);
  const quant::Layout& L = q.layout;
  for (int32_t i = threadIdx.x; i < G * D; i += blockDim.x) {
    const int32_t t = i / D, d = i % D;
    uint32_t code = quant::read_code(in + L.k_low, D, t, d);
    if (s_slot[d] >= 0) code |= quant::read_code(in + L.k_high, nbp, t, s_slot[d]) << 2;
    const float k = quant::dequantize(code, quant::half_to_float(load_u16(in + L.k_scale + 2 * d)),
                                      quant::half_to_float(load_u16(in + L.k_min + 2 * d)));
    const float v = quant::dequantize(quant::read_code(in + L.v_codes, G, d, t),
                                      quant::half_to_float(load_u16(in + L.v_scale + 2 * t)),
                                      quant::half_to_float(load_u16(in + L.v_min + 2 * t)));
    const int64_t off = a.dst.offset(s_page_ids[t / P], h, t % P) + d;
    store_scalar(static_cast<T*>(a.dst.k) + off, k);
    store_scalar(static_cast<T*>(a.dst.v) + off, v);
  }
}

// ----------------------------------------------------------------------------- decode

constexpr int kG = 128;         // tokens per quantized block (the kernel's unrolled m-tiles)
constexpr int kHeads = 8;       // query heads per block (the MMA's n)
constexpr int kSegTokens = 16;  // tokens per bf16 segment
constexpr int kUnitsPerBlock = kG / kSegTokens;  // a quantized segment weighs 8 bf16 ones
constexpr int64_t kMinUnitsPerSplit = 64;        // 1024 tokens: a block per warp at least
constexpr int kMaxBlocksPerSm = 4;

// W warps per block, ST cp.async stages per warp (the shared memory each warp owns).
template <int D, int NBK, int W, int ST>
struct QShape {
  static constexpr int kWarps = W, kStages = ST, kThreads = W * 32;
  static constexpr int kQStride = D + 8;  // floats per head row of q_s (fewer bank conflicts)
  static constexpr int kNbp = NBK * 16;
  static constexpr int kBlockBytes = kG * D / 4 + kG * kNbp / 4 + 4 * D + kNbp + kG * D / 4 + 4 * kG;
  static constexpr int kPageBytes = 2 * kSegTokens * D * 2;  // K and V of a bf16 segment
  static constexpr int kStageBytes = (kBlockBytes > kPageBytes ? kBlockBytes : kPageBytes);
  static constexpr int kMergeBytes = kWarps * kHeads * (D + 3) * 4;
  static constexpr int kStagesBytes = kWarps * kStages * kStageBytes;
  static constexpr int kSmemBytes =
      kHeads * kQStride * 4 + kHeads * D * 2 + (kStagesBytes > kMergeBytes ? kStagesBytes : kMergeBytes);
  static_assert(kStageBytes % 16 == 0, "16-byte copies");
};

struct QuantDecodeParams {
  QuantDecodeArgs a;
  float* part_o;
  float* part_lse;
  uint32_t* arrivals;
  int32_t group, tiles, splits, units_per_split;
  int64_t rows;
  float scale_log2;
  uint32_t off_k_low, off_k_high, off_k_scale, off_k_min, off_boost, off_v_codes, off_v_scale, off_v_min, block_bytes;
  DeviceErrorRecord* err;
};

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));  // (a & b) | c
  return d;
}

__device__ __forceinline__ uint32_t fma_f16x2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// The two codes at bits 2p and 16 + 2p of x (p <= 4) as fp16x2 (0..3 exactly).
template <int P>
__device__ __forceinline__ uint32_t codes_f16x2(uint32_t x) {
  constexpr uint32_t kMask = 0x00030003u << (2 * P);
  // 2^-2p and -1024 * 2^-2p in fp16, both halves.
  constexpr uint32_t kScale[5] = {0x3c003c00u, 0x34003400u, 0x2c002c00u, 0x24002400u, 0x1c001c00u};
  constexpr uint32_t kBias[5] = {0xe400e400u, 0xdc00dc00u, 0xd400d400u, 0xcc00cc00u, 0xc400c400u};
  return fma_f16x2(lop3_and_or(x, kMask, 0x64006400u), kScale[P], kBias[P]);
}

// A 32-bit plane word: the A fragments of k-steps 2w (r[0..3]) and 2w + 1 (r[4..7]).
__device__ __forceinline__ void unpack_word(uint32_t x, uint32_t (&r)[8]) {
  r[0] = codes_f16x2<0>(x);
  r[1] = codes_f16x2<1>(x);
  r[2] = codes_f16x2<2>(x);
  r[3] = codes_f16x2<3>(x);
  r[4] = codes_f16x2<4>(x);
  const uint32_t y = x >> 10;
  r[5] = codes_f16x2<0>(y);
  r[6] = codes_f16x2<1>(y);
  r[7] = codes_f16x2<2>(y);
}

// A 16-bit plane unit: the A fragment of its one k-step.
__device__ __forceinline__ void unpack_unit16(uint32_t u, uint32_t (&r)[4]) {
  const uint32_t x = __byte_perm(u, 0u, 0x4140u);  // low byte -> bits 0-7, high byte -> bits 16-23
  r[0] = codes_f16x2<0>(x);
  r[1] = codes_f16x2<1>(x);
  r[2] = codes_f16x2<2>(x);
  r[3] = codes_f16x2<3>(x);
}

__device__ __forceinline__ void mma_f16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                        uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_f16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

__device__ __forceinline__ uint32_t movmatrix_trans(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

__device__ __forceinline__ float bf16_lo_to_float(uint32_t pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float bf16_hi_to_float(uint32_t pair) { return __uint_as_float(pair & 0xffff0000u); }

// One sequence's segments as the block sees them.
struct SeqView {
  int32_t len = 0;       // tokens
  int32_t count = 0;     // quantized groups
  int32_t n_quant = 0;   // quantized groups attended (selected)
  int32_t a_len = 0;     // bf16 tokens [0, a_len) ...
  int32_t b_start = 0;   // ... and [b_start, len)
  int32_t n_bf16 = 0;    // bf16 tokens
  int64_t list = 0;      // (sequence, KV head) index of the selection
};

__device__ __forceinline__ SeqView sequence_view(const QuantDecodeParams& p, int32_t b, int32_t h, bool report) {
  const QuantDecodeArgs& a = p.a;
  SeqView v;
  v.list = static_cast<int64_t>(b) * a.kv.num_kv_heads + h;
  int32_t len = a.table.kv_lens[b];
  if (len < 0 || len > a.max_kv_len) {
    if (report) record_device_error(p.err, kDeviceErrorKvLenOutOfRange, b, len, a.max_kv_len);
    return v;  // attends nothing
  }
  const int32_t sink = a.qkv.sink_tokens;
  int32_t count = a.qtable.counts[b];
  const int32_t room = len >= sink ? (len - sink) / kG : 0;
  if (count < 0 || count > room) {
    if (report) record_device_error(p.err, kDeviceErrorQuantCount, b, count, room);
    return v;
  }
  int32_t n_quant = count;
  if (a.select.indices) {
    n_quant = a.select.counts[v.list];
    if (n_quant < 0 || n_quant > a.select.stride || n_quant > count) {
      if (report) record_device_error(p.err, kDeviceErrorQuantCount, v.list, n_quant, min(a.select.stride, count));
      n_quant = 0;
    }
  }
  v.len = len;
  v.count = count;
  v.n_quant = n_quant;
  v.a_len = min(sink, len);
  v.b_start = max(v.a_len, sink + count * kG);
  v.n_bf16 = v.a_len + max(0, len - v.b_start);
  return v;
}

template <int D, int NBK, int W, int ST>
__global__ void __launch_bounds__(W * 32, W == 8 ? 2 : 1) quant_decode_kernel(QuantDecodeParams p) {
  using S = QShape<D, NBK, W, ST>;
  constexpr int kWarps = W, kStages = ST, kThreads = W * 32, kQs = S::kQStride;
  constexpr int kKSteps = D / 16;  // k-steps of the key MMA, m-tiles of the value MMA
  constexpr int kMt = kG / 16;     // m-tiles of the key MMA, k-steps of the value MMA
  extern __shared__ float4 smem4[];
  float* q_s = reinterpret_cast<float*>(smem4);                              // [8][kQs] q * sm_scale * log2(e)
  uint16_t* q_b = reinterpret_cast<uint16_t*>(q_s + kHeads * kQs);           // [8][D] q as bf16
  uint8_t* stages = reinterpret_cast<uint8_t*>(q_b + kHeads * D);            // [warps][stages][stage bytes]
  const QuantDecodeArgs& a = p.a;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int tile = blockIdx.y % p.tiles;
  const int64_t bh = blockIdx.y / p.tiles;
  const int32_t H = a.kv.num_kv_heads;
  const int32_t b = static_cast<int32_t>(bh / H), h = static_cast<int32_t>(bh % H);
  const int n0 = tile * kHeads, nh = min(kHeads, p.group - n0);
  const int64_t row0 = static_cast<int64_t>(b) * a.num_q_heads + static_cast<int64_t>(h) * p.group + n0;

  for (int i = threadIdx.x; i < kHeads * D; i += kThreads) {
    const int n = i / D;
    const uint16_t raw = n < nh ? static_cast<const uint16_t*>(a.q)[(row0 + n) * D + i % D] : 0;
    q_b[i] = raw;
    q_s[n * kQs + i % D] = bf16_bits_to_float(raw) * p.scale_log2;
  }
  const SeqView sv = sequence_view(p, b, h, threadIdx.x == 0 && blockIdx.x == 0 && tile == 0);
  // This split's units: quantized segment i is units [8i, 8i + 8), bf16 segment k unit 8 n_quant + k.
  const int64_t u0 = static_cast<int64_t>(blockIdx.x) * p.units_per_split, u1 = u0 + p.units_per_split;
  const int64_t nq64 = sv.n_quant;
  const int32_t q_begin = static_cast<int32_t>(u0 / kUnitsPerBlock < nq64 ? u0 / kUnitsPerBlock : nq64);
  const int32_t q_end = static_cast<int32_t>(u1 / kUnitsPerBlock < nq64 ? u1 / kUnitsPerBlock : nq64);
  const int64_t n_bseg = (sv.n_bf16 + kSegTokens - 1) / kSegTokens;
  const int64_t bu = nq64 * kUnitsPerBlock;
  auto clamp_seg = [&](int64_t u) { return static_cast<int32_t>(u - bu < 0 ? 0 : (u - bu > n_bseg ? n_bseg : u - bu)); };
  const int32_t b_begin = clamp_seg(u0), b_end = clamp_seg(u1);
  const int32_t n_q = q_end - q_begin, n_seg = n_q + (b_end - b_begin);
  __syncthreads();

  // max |q * sm_scale * log2(e)| over the tile: with the block's largest key scale it bounds Q'.
  float qmax = 0.f;
  for (int i = lane; i < kHeads * D; i += 32) qmax = fmaxf(qmax, fabsf(q_s[(i / D) * kQs + i % D]));
#pragma unroll
  for (int sh = 16; sh >= 1; sh >>= 1) qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, sh));
  uint8_t* my_stages = stages + warp * kStages * S::kStageBytes;
  const int32_t P = a.kv.page_tokens;
  const uint16_t* k_pages = static_cast<const uint16_t*>(a.kv.k);
  const uint16_t* v_pages = static_cast<const uint16_t*>(a.kv.v);

  // Segment i of this warp (i-th of every 4th of the split's list): -1 past the end.
  auto seg_of = [&](int i) { const int s = warp + i * kWarps; return s < n_seg ? s : -1; };
  // Starts the copies of segment s into stage st (an empty group when s < 0).
  auto issue = [&](int s, int st) {
    uint8_t* dst = my_stages + st * S::kStageBytes;
    if (s >= 0 && s < n_q) {
      const int32_t i = q_begin + s;
      int32_t j = i;
      bool ok = true;
      if (a.select.indices) {
        const int64_t flat = sv.list * a.select.stride + i;
        j = a.select.indices[flat];
        if (j < 0 || j >= sv.count) {
          if (lane == 0) record_device_error(p.err, kDeviceErrorQuantCount, flat, j, sv.count);
          ok = false;
        }
      }
      int32_t blk = 0;
      if (ok) {
        const int64_t flat = b * a.qtable.seq_stride + j;
        blk = a.qtable.blocks[flat];
        if (blk < 0 || blk >= a.qkv.num_blocks) {
          if (lane == 0) record_device_error(p.err, kDeviceErrorBlockIdOutOfRange, flat, blk, a.qkv.num_blocks);
          ok = false;
        }
      }
      // A bad block reads zeros: codes 0, scales and mins 0, so it scores q . 0 and adds 0;
      // the stream's error record fails the call anyway.
      const uint8_t* src = static_cast<const uint8_t*>(a.qkv.blocks) + (ok ? a.qkv.offset(blk, h) : 0);
      for (int c = lane; c < static_cast<int>(p.block_bytes / 16); c += 32)
        pt::cp_async16(pt::smem_address(dst + c * 16), src + c * 16, ok);
    } else if (s >= 0) {
      const int32_t i0 = (b_begin + (s - n_q)) * kSegTokens;
      constexpr int kChunks = D / 8;  // 16-byte chunks per row
      uint16_t* sk = reinterpret_cast<uint16_t*>(dst);
      uint16_t* svv = sk + kSegTokens * D;
      for (int c = lane; c < kSegTokens * kChunks; c += 32) {
        const int r = c / kChunks, ch = c % kChunks;
        const int32_t ti = i0 + r;
        bool ok = ti < sv.n_bf16;
        int64_t off = 0;
        if (ok) {
          const int32_t tok = ti < sv.a_len ? ti : sv.b_start + (ti - sv.a_len);
          const int64_t flat = b * a.table.seq_stride + tok / P;
          const int32_t page = a.table.pages[flat];
          if (page < 0 || page >= a.kv.num_pages) {
            record_device_error(p.err, kDeviceErrorPageIdOutOfRange, flat, page, a.kv.num_pages);
            ok = false;
          } else {
            off = a.kv.offset(page, h, tok % P) + ch * 8;
          }
        }
        const int e = pt::swizzle<D>(r, ch);
        pt::cp_async16(pt::smem_address(sk + e), k_pages + off, ok);
        pt::cp_async16(pt::smem_address(svv + e), v_pages + off, ok);
      }
    }
    pt::cp_async_commit();
  };

  // The lane's heads: B operand head lane / 4; accumulator heads 2 * (lane % 4) + {0, 1}.
  const int nb_head = lane / 4, h0 = 2 * (lane % 4);
  float o_acc[kKSteps][4];
#pragma unroll
  for (int dt = 0; dt < kKSteps; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o_acc[dt][e] = 0.f;
  float m_run[2] = {kNegInf, kNegInf}, l_part[2] = {0.f, 0.f}, omin_part[2] = {0.f, 0.f};

  // Online-softmax update of this lane's two heads for scores s[mt][4] (rows lane/4 and + 8 of
  // m-tile mt; columns h0, h0 + 1): rescales the accumulators, turns s into 2^(s - m).
  auto softmax_update = [&](float (&s)[kMt][4], int nmt) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      float mx = kNegInf;
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt)
        if (mt < nmt) mx = fmaxf(mx, fmaxf(s[mt][c], s[mt][c + 2]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
      const float m_new = fmaxf(m_run[c], mx);
      const float base = m_new == kNegInf ? 0.f : m_new;
      const float factor = m_run[c] == kNegInf ? 0.f : exp2f(m_run[c] - base);
      m_run[c] = m_new;
      l_part[c] *= factor;
      omin_part[c] *= factor;
#pragma unroll
      for (int dt = 0; dt < kKSteps; ++dt) {
        o_acc[dt][c] *= factor;
        o_acc[dt][c + 2] *= factor;
      }
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) {
        if (mt < nmt) {
          s[mt][c] = exp2f(s[mt][c] - base);
          s[mt][c + 2] = exp2f(s[mt][c + 2] - base);
          l_part[c] += s[mt][c] + s[mt][c + 2];
        }
      }
    }
  };

  auto compute_quant = [&](const uint8_t* sb) {
    const uint16_t* k_scale = reinterpret_cast<const uint16_t*>(sb + p.off_k_scale);
    const uint16_t* k_min = reinterpret_cast<const uint16_t*>(sb + p.off_k_min);
    const float* qh = q_s + nb_head * kQs;
    // Power-of-two scaling of Q' = q * k_scale (times 4 for the high plane): from the bound
    // 4 * max|q| * max k_scale into [2^14, 2^15), so fp16 neither overflows nor loses the small
    // scales. The lanes of a quad read every channel's scale between them.
    float kmax = 0.f;
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const uint32_t sc = *reinterpret_cast<const uint32_t*>(k_scale + ks * 16 + h0 + half * 8);
        kmax = fmaxf(kmax, fmaxf(quant::half_to_float(static_cast<uint16_t>(sc & 0xffffu)),
                                 quant::half_to_float(static_cast<uint16_t>(sc >> 16))));
      }
    kmax = fmaxf(kmax, __shfl_xor_sync(0xffffffffu, kmax, 1));
    kmax = fmaxf(kmax, __shfl_xor_sync(0xffffffffu, kmax, 2));
    const float bound = 4.f * qmax * kmax;
    int ex = 0;
    if (bound > 0.f && bound < __int_as_float(0x7f800000)) ex = ((__float_as_int(bound) >> 23) & 0xff) - 127;
    ex = max(-100, min(100, ex));
    const float mult = __int_as_float((127 + 14 - ex) << 23), inv_mult = __int_as_float((127 - 14 + ex) << 23);
    // B fragments of Q' (channel pairs (c, c + 1): one 32-bit load of the fp16 scales and mins,
    // one 64-bit load of q) and the lane's part of q . min.
    uint32_t bq[kKSteps][2];
    float cmin = 0.f;
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int ch = ks * 16 + h0 + half * 8;
        const uint32_t sc = *reinterpret_cast<const uint32_t*>(k_scale + ch);
        const uint32_t mn = *reinterpret_cast<const uint32_t*>(k_min + ch);
        const float2 qq = *reinterpret_cast<const float2*>(qh + ch);
        const float s0 = quant::half_to_float(static_cast<uint16_t>(sc & 0xffffu));
        const float s1 = quant::half_to_float(static_cast<uint16_t>(sc >> 16));
        const float m0 = quant::half_to_float(static_cast<uint16_t>(mn & 0xffffu));
        const float m1 = quant::half_to_float(static_cast<uint16_t>(mn >> 16));
        bq[ks][half] = pack_f16x2(qq.x * s0 * mult, qq.y * s1 * mult);
        cmin = fmaf(qq.x, m0, fmaf(qq.y, m1, cmin));
      }
    }
    uint32_t bh[NBK > 0 ? NBK : 1][2];
    if constexpr (NBK > 0) {
      const uint8_t* boost = sb + p.off_boost;
#pragma unroll
      for (int hk = 0; hk < NBK; ++hk) {
        float fh[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const uint8_t ch = boost[hk * 16 + h0 + (e & 1) + (e >> 1) * 8];
          fh[e] = ch < D ? 4.f * qh[ch] * quant::half_to_float(k_scale[ch]) * mult : 0.f;
        }
        bh[hk][0] = pack_f16x2(fh[0], fh[1]);
        bh[hk][1] = pack_f16x2(fh[2], fh[3]);
      }
    }
    cmin += __shfl_xor_sync(0xffffffffu, cmin, 1);
    cmin += __shfl_xor_sync(0xffffffffu, cmin, 2);
    const float c0 = __shfl_sync(0xffffffffu, cmin, h0 * 4), c1 = __shfl_sync(0xffffffffu, cmin, (h0 + 1) * 4);
    // S^T = codes x Q'^T.
    float s[kMt][4];
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mt][e] = 0.f;
      const uint8_t* unit = sb + p.off_k_low + (mt * 32 + lane) * (D / 8);
      uint32_t words[D / 32];
      if constexpr (D == 128) {
        const uint4 w4 = *reinterpret_cast<const uint4*>(unit);
        words[0] = w4.x;
        words[1] = w4.y;
        words[2] = w4.z;
        words[3] = w4.w;
      } else {
        const uint2 w2 = *reinterpret_cast<const uint2*>(unit);
        words[0] = w2.x;
        words[1] = w2.y;
      }
#pragma unroll
      for (int w = 0; w < D / 32; ++w) {
        uint32_t r[8];
        unpack_word(words[w], r);
        mma_f16(s[mt], r[0], r[1], r[2], r[3], bq[2 * w][0], bq[2 * w][1]);
        mma_f16(s[mt], r[4], r[5], r[6], r[7], bq[2 * w + 1][0], bq[2 * w + 1][1]);
      }
      if constexpr (NBK == 1) {
        uint32_t r[4];
        unpack_unit16(load_u16(sb + p.off_k_high + (mt * 32 + lane) * 2), r);
        mma_f16(s[mt], r[0], r[1], r[2], r[3], bh[0][0], bh[0][1]);
      } else if constexpr (NBK == 2) {
        uint32_t r[8];
        unpack_word(*reinterpret_cast<const uint32_t*>(sb + p.off_k_high + (mt * 32 + lane) * 4), r);
        mma_f16(s[mt], r[0], r[1], r[2], r[3], bh[0][0], bh[0][1]);
        mma_f16(s[mt], r[4], r[5], r[6], r[7], bh[1][0], bh[1][1]);
      }
      s[mt][0] = fmaf(s[mt][0], inv_mult, c0);
      s[mt][1] = fmaf(s[mt][1], inv_mult, c1);
      s[mt][2] = fmaf(s[mt][2], inv_mult, c0);
      s[mt][3] = fmaf(s[mt][3], inv_mult, c1);
    }
    softmax_update(s, kMt);
    // P' = p * v_scale (fp16) transposed into the value MMA's B fragments; sum p * v_min aside.
    const uint16_t* v_scale = reinterpret_cast<const uint16_t*>(sb + p.off_v_scale);
    const uint16_t* v_min = reinterpret_cast<const uint16_t*>(sb + p.off_v_min);
    uint32_t bv[kMt][2];
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
      const int t0 = mt * 16 + lane / 4, t1 = t0 + 8;
      const float vs0 = quant::half_to_float(v_scale[t0]), vs1 = quant::half_to_float(v_scale[t1]);
      const float vm0 = quant::half_to_float(v_min[t0]), vm1 = quant::half_to_float(v_min[t1]);
      omin_part[0] = fmaf(s[mt][0], vm0, fmaf(s[mt][2], vm1, omin_part[0]));
      omin_part[1] = fmaf(s[mt][1], vm0, fmaf(s[mt][3], vm1, omin_part[1]));
      bv[mt][0] = movmatrix_trans(pack_f16x2(s[mt][0] * vs0, s[mt][1] * vs0));
      bv[mt][1] = movmatrix_trans(pack_f16x2(s[mt][2] * vs1, s[mt][3] * vs1));
    }
    // O^T += codes_V^T x P'^T.
#pragma unroll
    for (int dt = 0; dt < kKSteps; ++dt) {
      const uint4 w4 = *reinterpret_cast<const uint4*>(sb + p.off_v_codes + (dt * 32 + lane) * (kG / 8));
      const uint32_t words[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        uint32_t r[8];
        unpack_word(words[w], r);
        mma_f16(o_acc[dt], r[0], r[1], r[2], r[3], bv[2 * w][0], bv[2 * w][1]);
        mma_f16(o_acc[dt], r[4], r[5], r[6], r[7], bv[2 * w + 1][0], bv[2 * w + 1][1]);
      }
    }
  };

  auto compute_bf16 = [&](const uint8_t* sb, int ntok) {
    const uint16_t* sk = reinterpret_cast<const uint16_t*>(sb);
    const uint16_t* svv = sk + kSegTokens * D;
    float s[kMt][4];
#pragma unroll
    for (int e = 0; e < 4; ++e) s[0][e] = 0.f;
    const uint16_t* qb = q_b + nb_head * D;
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      uint32_t af[4];
      pt::ldmatrix_x4(pt::smem_address(sk + pt::swizzle<D>(lane % 16, 2 * ks + lane / 16)), af);
      const uint32_t b0 = *reinterpret_cast<const uint32_t*>(qb + ks * 16 + h0);
      const uint32_t b1 = *reinterpret_cast<const uint32_t*>(qb + ks * 16 + h0 + 8);
      pt::mma_bf16(s[0], af, b0, b1);
    }
    const int t0 = lane / 4, t1 = t0 + 8;
    s[0][0] = t0 < ntok ? s[0][0] * p.scale_log2 : kNegInf;
    s[0][1] = t0 < ntok ? s[0][1] * p.scale_log2 : kNegInf;
    s[0][2] = t1 < ntok ? s[0][2] * p.scale_log2 : kNegInf;
    s[0][3] = t1 < ntok ? s[0][3] * p.scale_log2 : kNegInf;
    softmax_update(s, 1);
    // P as bf16 hi + lo (the paged decode's precision), transposed into B fragments.
    const uint32_t hi0 = pt::pack_bf16x2(s[0][0], s[0][1]), hi1 = pt::pack_bf16x2(s[0][2], s[0][3]);
    const uint32_t lo0 = pt::pack_bf16x2(s[0][0] - bf16_lo_to_float(hi0), s[0][1] - bf16_hi_to_float(hi0));
    const uint32_t lo1 = pt::pack_bf16x2(s[0][2] - bf16_lo_to_float(hi1), s[0][3] - bf16_hi_to_float(hi1));
    const uint32_t bh0 = movmatrix_trans(hi0), bh1 = movmatrix_trans(hi1);
    const uint32_t bl0 = movmatrix_trans(lo0), bl1 = movmatrix_trans(lo1);
#pragma unroll
    for (int dt = 0; dt < kKSteps; ++dt) {
      uint32_t af[4];
      const int tok = lane % 8 + 8 * (lane / 16), chunk = 2 * dt + (lane / 8) % 2;
      pt::ldmatrix_x4_trans(pt::smem_address(svv + pt::swizzle<D>(tok, chunk)), af);
      pt::mma_bf16(o_acc[dt], af, bh0, bh1);
      pt::mma_bf16(o_acc[dt], af, bl0, bl1);
    }
  };

  // The warp's pipeline over its segments.
  issue(seg_of(0), 0);
  issue(seg_of(1), 1);
  for (int i = 0;; ++i) {
    const int s = seg_of(i);
    if (s < 0) break;
    pt::cp_async_wait<kStages - 1>();
    __syncwarp();
    const uint8_t* sb = my_stages + (i % kStages) * S::kStageBytes;
    if (s < n_q) {
      compute_quant(sb);
    } else {
      const int32_t i0 = (b_begin + (s - n_q)) * kSegTokens;
      compute_bf16(sb, min(kSegTokens, sv.n_bf16 - i0));
    }
    __syncwarp();
    issue(seg_of(i + kStages), i % kStages);
  }
  pt::cp_async_wait<0>();

  // The lane's partial sums, over the 8 lanes that share its heads.
#pragma unroll
  for (int c = 0; c < 2; ++c) {
#pragma unroll
    for (int sh = 4; sh <= 16; sh <<= 1) {
      l_part[c] += __shfl_xor_sync(0xffffffffu, l_part[c], sh);
      omin_part[c] += __shfl_xor_sync(0xffffffffu, omin_part[c], sh);
    }
  }
  __syncthreads();  // every warp is done with its stages: the merge area reuses them
  float* mo = reinterpret_cast<float*>(stages);  // [warps][8][D] unnormalized o
  float* mm = mo + kWarps * kHeads * D;          // [warps][8] running max (log2)
  float* ml = mm + kWarps * kHeads;              // [warps][8] sum
  float* mmin = ml + kWarps * kHeads;            // [warps][8] sum p * v_min
#pragma unroll
  for (int dt = 0; dt < kKSteps; ++dt) {
    const int ch = dt * 16 + lane / 4;
    mo[(warp * kHeads + h0) * D + ch] = o_acc[dt][0];
    mo[(warp * kHeads + h0 + 1) * D + ch] = o_acc[dt][1];
    mo[(warp * kHeads + h0) * D + ch + 8] = o_acc[dt][2];
    mo[(warp * kHeads + h0 + 1) * D + ch + 8] = o_acc[dt][3];
  }
  if (lane < 4) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      mm[warp * kHeads + h0 + c] = m_run[c];
      ml[warp * kHeads + h0 + c] = l_part[c];
      mmin[warp * kHeads + h0 + c] = omin_part[c];
    }
  }
  __syncthreads();
  const bool split = p.splits > 1;
  for (int i = threadIdx.x; i < nh * D; i += kThreads) {
    const int n = i / D, d = i % D;
    float m = kNegInf;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, mm[w * kHeads + n]);
    float l = 0.f, acc = 0.f;
    if (m != kNegInf) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float mw = mm[w * kHeads + n];
        if (mw == kNegInf) continue;
        const float wt = exp2f(mw - m);
        l = fmaf(wt, ml[w * kHeads + n], l);
        acc = fmaf(wt, mo[(w * kHeads + n) * D + d] + mmin[w * kHeads + n], acc);
      }
    }
    const float out = l > 0.f ? acc / l : (isnan(l) ? kNaN : 0.f);
    const float lse = l > 0.f ? (m + log2f(l)) * kLn2 : (isnan(l) ? kNaN : kNegInf);
    const int64_t row = row0 + n;
    if (split) {
      p.part_o[(static_cast<int64_t>(blockIdx.x) * p.rows + row) * D + d] = out;
      if (d == 0) p.part_lse[static_cast<int64_t>(blockIdx.x) * p.rows + row] = lse;
    } else {
      store_scalar(static_cast<uint16_t*>(a.o) + row * D + d, out);
      if (a.lse && d == 0) a.lse[row] = lse;
    }
  }
  if (split)
    merge_split_rows_if_last<uint16_t, D>(p.arrivals + blockIdx.y, p.splits, p.part_o, p.part_lse, p.rows, row0, nh,
                                          static_cast<uint16_t*>(a.o), a.lse);
}

// ----------------------------------------------------------------------------- host side

uint64_t align256(uint64_t x) { return (x + 255) / 256 * 256; }

uint64_t split_bytes(int64_t splits, int64_t rows, int32_t head_dim) {
  return align256(static_cast<uint64_t>(splits * rows * head_dim) * 4) + align256(static_cast<uint64_t>(splits * rows) * 4);
}

struct DecodeKernel {
  void (*fn)(QuantDecodeParams);
  int smem_bytes;
  int block_bytes;  // the constexpr layout size the kernel was built for
  int threads;
};

template <int D, int NBK, int W, int ST>
DecodeKernel kernel_of() {
  using S = QShape<D, NBK, W, ST>;
  return {quant_decode_kernel<D, NBK, W, ST>, S::kSmemBytes, S::kBlockBytes, S::kThreads};
}

// The block shape: KVASIR_QUANT_DECODE_KERNEL = w4s2 (4 warps, 2 stages each), w4s1 or w8s1
// (benchmarks compare them; unset: the default below).
int kernel_shape() {
  const char* env = std::getenv("KVASIR_QUANT_DECODE_KERNEL");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "auto") == 0) return 0;
  if (std::strcmp(env, "w4s2") == 0) return 0;
  if (std::strcmp(env, "w4s1") == 0) return 1;
  if (std::strcmp(env, "w8s1") == 0) return 2;
  fail(KV_STATUS_INVALID_ARGUMENT, "KVASIR_QUANT_DECODE_KERNEL=", env, " must be auto, w4s2, w4s1 or w8s1");
}

template <int D, int NBK>
DecodeKernel kernel_dn(int shape) {
  switch (shape) {
    case 1: return kernel_of<D, NBK, 4, 1>();
    case 2: return kernel_of<D, NBK, 8, 1>();
    default: return kernel_of<D, NBK, 4, 2>();
  }
}

bool kernel_for(int32_t D, int32_t nbp, DecodeKernel* out) {
  const int shape = kernel_shape();
  switch (D * 1000 + nbp) {
    case 128000: *out = kernel_dn<128, 0>(shape); return true;
    case 128016: *out = kernel_dn<128, 1>(shape); return true;
    case 128032: *out = kernel_dn<128, 2>(shape); return true;
    case 64000: *out = kernel_dn<64, 0>(shape); return true;
    case 64016: *out = kernel_dn<64, 1>(shape); return true;
    case 64032: *out = kernel_dn<64, 2>(shape); return true;
    default: return false;
  }
}

int prepare_kernel(int32_t device, const DecodeKernel& kernel) {
  struct Entry {
    void (*fn)(QuantDecodeParams);
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
  KV_CUDA_CHECK(
      cudaFuncSetAttribute(kernel.fn, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  KV_CUDA_CHECK(cudaFuncSetAttribute(kernel.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, kernel.smem_bytes));
  int resident = 0;
  KV_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel.fn, kernel.threads, kernel.smem_bytes));
  resident = std::max(1, std::min(resident, kMaxBlocksPerSm));
  std::lock_guard<std::mutex> lock(mu);
  cache.push_back({kernel.fn, device, resident});
  return resident;
}

// The fewest splits whose blocks fill the GPU's resident slots (whole units of 8 bf16 segments:
// a quantized block never straddles two splits), bounded by the workspace.
void make_plan(int64_t slots, int64_t block_rows, int64_t rows, int32_t D, int32_t max_kv_len, uint64_t workspace_bytes,
               int32_t* splits_out, int32_t* units_out) {
  const int64_t max_units = std::max<int64_t>(1, (static_cast<int64_t>(max_kv_len) + kSegTokens - 1) / kSegTokens);
  int64_t splits = std::max<int64_t>(1, (slots + block_rows - 1) / block_rows);
  splits = std::min(splits, std::max<int64_t>(1, max_units / kMinUnitsPerSplit));
  while (splits > 1 && split_bytes(splits, rows, D) > workspace_bytes)
    splits = std::min<int64_t>(splits - 1, static_cast<int64_t>(workspace_bytes / split_bytes(1, rows, D)));
  if (splits < 2) splits = 1;
  int64_t units = (max_units + splits - 1) / splits;
  units = (units + kUnitsPerBlock - 1) / kUnitsPerBlock * kUnitsPerBlock;
  *units_out = static_cast<int32_t>(units);
  *splits_out = static_cast<int32_t>((max_units + units - 1) / units);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

template <typename T>
void launch_pack(Stream* s, const QuantPackArgs& a) {
  const int32_t G = a.dst.group_tokens, D = a.dst.head_dim;
  const int smem = (G * D + D + 512 + D) * 4;
  KV_CUDA_CHECK(cudaFuncSetAttribute(quant_pack_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  quant_pack_kernel<T><<<dim3(static_cast<unsigned>(a.num_jobs), static_cast<unsigned>(a.dst.num_kv_heads)),
                         kPackThreads, smem, s->stream>>>(a, s->error_record);
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace

void quant_pack(Stream* s, const QuantPackArgs& a) {
  DeviceGuard guard(s->device);
  KV_REQUIRE(a.dst.head_stride % 16 == 0, "dst.head_stride must be a multiple of 16 bytes");
  if (a.dtype == KV_DTYPE_BF16) launch_pack<uint16_t>(s, a);
  else launch_pack<float>(s, a);
}

void quant_unpack(Stream* s, const QuantUnpackArgs& a) {
  DeviceGuard guard(s->device);
  const dim3 grid(static_cast<unsigned>(a.num_jobs), static_cast<unsigned>(a.src.num_kv_heads));
  if (a.dtype == KV_DTYPE_BF16) quant_unpack_kernel<uint16_t><<<grid, kPackThreads, 0, s->stream>>>(a, s->error_record);
  else quant_unpack_kernel<float><<<grid, kPackThreads, 0, s->stream>>>(a, s->error_record);
  KV_CUDA_CHECK_LAUNCH();
}

uint64_t quant_decode_workspace_bytes(int32_t device, int32_t batch, int32_t num_q_heads, int32_t head_dim,
                                      int32_t max_kv_len) {
  const int64_t slots = static_cast<int64_t>(multiprocessor_count(device)) * kMaxBlocksPerSm;
  const int64_t max_units = std::max<int64_t>(1, (static_cast<int64_t>(max_kv_len) + kSegTokens - 1) / kSegTokens);
  const int64_t splits = std::min(std::max<int64_t>(1, max_units / kMinUnitsPerSplit),
                                  std::max<int64_t>(1, (slots + batch - 1) / batch));
  return splits > 1 ? split_bytes(splits, static_cast<int64_t>(batch) * num_q_heads, head_dim) : 0;
}

void quant_decode(Stream* s, const QuantDecodeArgs& a) {
  DeviceGuard guard(s->device);
  if (a.dtype != KV_DTYPE_BF16)
    fail(KV_STATUS_UNSUPPORTED, "kv_quant_decode_async on CUDA runs bf16 models only (dtype f32 is CPU-only)");
  if (a.qkv.group_tokens != kG)
    fail(KV_STATUS_UNSUPPORTED, "kv_quant_decode_async on CUDA needs qkv.format.group_tokens = ", kG, ", not ",
         a.qkv.group_tokens);
  DecodeKernel kernel;
  const int32_t nbp = quant::boost_slots(a.qkv.boost_channels);
  if (!kernel_for(a.kv.head_dim, nbp, &kernel))
    fail(KV_STATUS_UNSUPPORTED, "kv_quant_decode_async on CUDA: boost_channels=", a.qkv.boost_channels,
         " (", nbp, " slots) is not built for head_dim ", a.kv.head_dim, " (0, 8..16 or 24..32 channels)");
  KV_REQUIRE(static_cast<int>(a.qkv.layout.bytes) == kernel.block_bytes, "internal: quantized block layout of ",
             a.qkv.layout.bytes, " bytes, the kernel was built for ", kernel.block_bytes);
  KV_REQUIRE(aligned16(a.q) && aligned16(a.kv.k) && aligned16(a.kv.v) && a.qkv.head_stride % 16 == 0 &&
                 a.qkv.block_stride % 16 == 0,
             "q, the pages and the blocks must be 16-byte aligned on CUDA");
  const int32_t group = a.num_q_heads / a.kv.num_kv_heads;
  const int32_t tiles = (group + kHeads - 1) / kHeads;
  const int64_t grid_y = static_cast<int64_t>(a.batch) * a.kv.num_kv_heads * tiles;
  if (grid_y > 65535)
    fail(KV_STATUS_UNSUPPORTED, "batch * num_kv_heads * head tiles = ", grid_y, " exceeds 65535 blocks");
  const int resident = prepare_kernel(s->device, kernel);
  const uint64_t usable = (reinterpret_cast<uintptr_t>(a.workspace) & 255u) ? 0 : a.workspace_bytes;
  QuantDecodeParams p;
  p.a = a;
  p.group = group;
  p.tiles = tiles;
  p.rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  make_plan(static_cast<int64_t>(multiprocessor_count(s->device)) * resident, grid_y, p.rows, a.kv.head_dim,
            a.max_kv_len, usable, &p.splits, &p.units_per_split);
  const uint64_t part_o_bytes = align256(static_cast<uint64_t>(p.splits) * p.rows * a.kv.head_dim * 4);
  p.part_o = p.splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  p.part_lse = p.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(a.workspace) + part_o_bytes) : nullptr;
  p.arrivals = s->arrivals;
  p.scale_log2 = a.sm_scale * kLog2e;
  const quant::Layout& L = a.qkv.layout;
  p.off_k_low = static_cast<uint32_t>(L.k_low);
  p.off_k_high = static_cast<uint32_t>(L.k_high);
  p.off_k_scale = static_cast<uint32_t>(L.k_scale);
  p.off_k_min = static_cast<uint32_t>(L.k_min);
  p.off_boost = static_cast<uint32_t>(L.boost);
  p.off_v_codes = static_cast<uint32_t>(L.v_codes);
  p.off_v_scale = static_cast<uint32_t>(L.v_scale);
  p.off_v_min = static_cast<uint32_t>(L.v_min);
  p.block_bytes = static_cast<uint32_t>(L.bytes);
  p.err = s->error_record;
  dim3 grid(static_cast<unsigned>(p.splits), static_cast<unsigned>(grid_y));
  kernel.fn<<<grid, kernel.threads, kernel.smem_bytes, s->stream>>>(p);
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace kv::cuda
