// Quest on CUDA: page key summaries and query-aware page selection, every decode step and layer.
//
// Summary update: one block per (listed page, KV head); L = D/8 lanes read a K row with 16-byte
// loads (8 channels each), 128/L rows at a time, and keep min/max as totalOrder keys
// (core/paged_quest_order.h), reduced across rows in shared memory: exact, order-free.
//
// Selection runs in two kernels, no host round trip:
//  1. score: grid (sequence x KV head, split of its pages). A lane group of L lanes owns a page:
//     it loads the page's min and max rows (16-byte loads, kUnroll pages in flight per group),
//     multiplies by the group's query heads held in registers, reduces across the L lanes with
//     shuffles and writes the page's rank key (larger = better) to the workspace
//     [batch][Hkv][max_pages]. Summaries are read once, near memory bandwidth.
//  2. select: one block per (sequence, KV head). A radix select over the 32-bit keys (four 8-bit
//     digit passes, a 256-bin shared histogram each) finds the threshold key T of the
//     (top_k - 1)-th best page and how many pages equal to T are taken (r). One ordered block
//     scan over j then counts, per page, the better pages and the T-pages before it: the page is
//     taken when it beats T, or equals T and fewer than r T-pages precede it (ties: lower j), and
//     its output position is that count, so indices come out ascending. The newest page goes last.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/paged_quest_order.h"
#include "cuda/cuda_common.cuh"
#include "cuda/paged_quest.h"

namespace kv::cuda {
namespace {

// ---------------------------------------------------------------------------- summary update

constexpr int kSumThreads = 128;

// Eight raw elements (bits) from a 16-byte aligned address.
__device__ __forceinline__ void load8_bits(const uint16_t* p, uint16_t* x) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    x[2 * i] = static_cast<uint16_t>(w[i] & 0xffffu);
    x[2 * i + 1] = static_cast<uint16_t>(w[i] >> 16);
  }
}
__device__ __forceinline__ void load8_bits(const uint32_t* p, uint32_t* x) {
  const uint4 v0 = reinterpret_cast<const uint4*>(p)[0];
  const uint4 v1 = reinterpret_cast<const uint4*>(p)[1];
  x[0] = v0.x, x[1] = v0.y, x[2] = v0.z, x[3] = v0.w;
  x[4] = v1.x, x[5] = v1.y, x[6] = v1.z, x[7] = v1.w;
}

// B: the element's bit type (uint16_t for bf16, uint32_t for fp32). Keys are of the same width.
template <typename B, int D>
__global__ void __launch_bounds__(kSumThreads) summary_kernel(PageSummaryArgs a, int32_t heads, int64_t items,
                                                               DeviceErrorRecord* err) {
  constexpr int L = D / 8;            // lanes per row
  constexpr int R = kSumThreads / L;  // rows in flight
  __shared__ B s_lo[R][D];
  __shared__ B s_hi[R][D];
  const int sl = threadIdx.x % L, r = threadIdx.x / L;
  const B* k = static_cast<const B*>(a.kv.k);
  B* out = static_cast<B*>(a.summaries.data);
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int32_t i = static_cast<int32_t>(item / heads);
    const int32_t h = static_cast<int32_t>(item % heads);
    const int32_t page = a.pages[i];
    const int32_t rows = a.valid_tokens[i];
    const bool bad_page = page < 0 || page >= a.kv.num_pages;
    const bool bad_rows = rows < 1 || rows > a.kv.page_tokens;
    if (bad_page || bad_rows) {  // the same for every thread of the block: no barrier skipped by some
      if (threadIdx.x == 0 && h == 0) {
        if (bad_page) record_device_error(err, kDeviceErrorPageIdOutOfRange, i, page, a.kv.num_pages);
        else record_device_error(err, kDeviceErrorKvLenOutOfRange, i, rows, a.kv.page_tokens);
      }
      continue;
    }
    B lo[8], hi[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      lo[e] = static_cast<B>(~B{0});
      hi[e] = B{0};
    }
    for (int t = r; t < rows; t += R) {
      B x[8];
      load8_bits(k + a.kv.offset(page, h, t) + sl * 8, x);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const B key = total_order_key(x[e]);
        lo[e] = key < lo[e] ? key : lo[e];
        hi[e] = key > hi[e] ? key : hi[e];
      }
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      s_lo[r][sl * 8 + e] = lo[e];
      s_hi[r][sl * 8 + e] = hi[e];
    }
    __syncthreads();
    B* dst = out + a.summaries.offset(page, h);
    for (int c = threadIdx.x; c < D; c += kSumThreads) {
      B l = s_lo[0][c], m = s_hi[0][c];
#pragma unroll
      for (int rr = 1; rr < R; ++rr) {
        l = s_lo[rr][c] < l ? s_lo[rr][c] : l;
        m = s_hi[rr][c] > m ? s_hi[rr][c] : m;
      }
      dst[c] = total_order_bits(l);
      dst[D + c] = total_order_bits(m);
    }
    __syncthreads();  // the next item overwrites s_lo/s_hi
  }
}

template <typename B>
void launch_summary(Stream* s, const PageSummaryArgs& a, int32_t heads, int64_t items, int blocks) {
  switch (a.kv.head_dim) {
    case 64: summary_kernel<B, 64><<<blocks, kSumThreads, 0, s->stream>>>(a, heads, items, s->error_record); break;
    case 128: summary_kernel<B, 128><<<blocks, kSumThreads, 0, s->stream>>>(a, heads, items, s->error_record); break;
    default: summary_kernel<B, 256><<<blocks, kSumThreads, 0, s->stream>>>(a, heads, items, s->error_record); break;
  }
  KV_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------------------- score

constexpr int kScoreThreads = 256;
constexpr int kUnroll = 4;  // pages in flight per lane group

struct ScoreParams {
  QuestSelectArgs a;
  int32_t group;            // query heads per KV head
  int64_t max_pages;        // keys row length
  int64_t pages_per_split;  // a multiple of the lane groups per block
  uint32_t* keys;           // [batch * Hkv][max_pages]
  DeviceErrorRecord* err;
};

// GT: query heads held in registers (the group rounded up to a power of two, masked), or 0 for
// groups above 8: their q rows are re-read per page from L1.
template <typename T, int D, int GT>
__global__ void __launch_bounds__(kScoreThreads) quest_score_kernel(ScoreParams p) {
  constexpr int L = D / 8;
  constexpr int kGroups = kScoreThreads / L;
  using Raw = typename Pack8<T>::Raw;
  const QuestSelectArgs& a = p.a;
  const int64_t bh = blockIdx.x;
  const int32_t b = static_cast<int32_t>(bh / a.kv.num_kv_heads);
  const int32_t h = static_cast<int32_t>(bh % a.kv.num_kv_heads);
  const int32_t len = a.table.kv_lens[b];
  if (len < 0 || len > a.max_kv_len) {
    if (blockIdx.y == 0 && threadIdx.x == 0 && h == 0) record_device_error(p.err, kDeviceErrorKvLenOutOfRange, b, len, a.max_kv_len);
    return;
  }
  const int64_t n = (static_cast<int64_t>(len) + a.kv.page_tokens - 1) / a.kv.page_tokens;
  if (n <= a.top_k) return;  // every page is selected: nothing to rank
  const int64_t m = n - 1;   // candidates: all but the newest page
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * p.pages_per_split;
  const int64_t end = m < begin + p.pages_per_split ? m : begin + p.pages_per_split;
  if (begin >= end) return;

  const int sl = threadIdx.x % L, grp = threadIdx.x / L;
  const T* qp = static_cast<const T*>(a.q) +
                (static_cast<int64_t>(b) * a.num_q_heads + static_cast<int64_t>(h) * p.group) * D + sl * 8;
  constexpr int kQ = GT > 0 ? GT : 1;
  float q[kQ][8];
#pragma unroll
  for (int g = 0; g < kQ; ++g) {
    if (GT > 0 && g < p.group) {
      Pack8<T>::load(qp + static_cast<int64_t>(g) * D, q[g]);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) q[g][e] = 0.f;
    }
  }
  const T* sums = static_cast<const T*>(a.summaries.data);
  uint32_t* keys = p.keys + bh * p.max_pages;

  for (int64_t base = begin; base < end; base += kGroups * kUnroll) {  // uniform over the block
    Raw lo[kUnroll], hi[kUnroll];
    bool ok[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = base + u * kGroups + grp;
      ok[u] = j < end;
      lo[u] = hi[u] = Raw{};
      if (ok[u]) {
        const int32_t page = a.table.page(b, h, j);
        if (page < 0 || page >= a.kv.num_pages) {
          if (sl == 0) {
            record_device_error(p.err, kDeviceErrorPageIdOutOfRange, b * a.table.seq_stride + h * a.table.head_stride + j,
                         page, a.kv.num_pages);
            keys[j] = 0;  // ranked last; the call fails at the next synchronize anyway
          }
          ok[u] = false;
        } else {
          const T* row = sums + a.summaries.offset(page, h) + sl * 8;
          lo[u] = Pack8<T>::load_raw(row);
          hi[u] = Pack8<T>::load_raw(row + D);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float best = 0.f;
      if constexpr (GT > 0) {
        float s[GT];
#pragma unroll
        for (int g = 0; g < GT; ++g) {
          float acc = 0.f;
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            const float x = q[g][e];
            acc += fmaxf(x * Pack8<T>::unpack(lo[u], e), x * Pack8<T>::unpack(hi[u], e));
          }
#pragma unroll
          for (int off = L / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
          s[g] = acc;
        }
        best = s[0];
#pragma unroll
        for (int g = 1; g < GT; ++g)
          if (g < p.group) best = fmaxf(best, s[g]);
      } else {
        for (int g = 0; g < p.group; ++g) {
          float qg[8];
          Pack8<T>::load(qp + static_cast<int64_t>(g) * D, qg);
          float acc = 0.f;
#pragma unroll
          for (int e = 0; e < 8; ++e)
            acc += fmaxf(qg[e] * Pack8<T>::unpack(lo[u], e), qg[e] * Pack8<T>::unpack(hi[u], e));
#pragma unroll
          for (int off = L / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
          best = g == 0 ? acc : fmaxf(best, acc);
        }
      }
      if (ok[u] && sl == 0) keys[base + u * kGroups + grp] = quest_score_key(__float_as_uint(best));
    }
  }
}

template <typename T, int D>
void launch_score_d(Stream* s, const ScoreParams& p, dim3 grid) {
  if (p.group == 1) quest_score_kernel<T, D, 1><<<grid, kScoreThreads, 0, s->stream>>>(p);
  else if (p.group == 2) quest_score_kernel<T, D, 2><<<grid, kScoreThreads, 0, s->stream>>>(p);
  else if (p.group <= 4) quest_score_kernel<T, D, 4><<<grid, kScoreThreads, 0, s->stream>>>(p);
  else if (p.group <= 8) quest_score_kernel<T, D, 8><<<grid, kScoreThreads, 0, s->stream>>>(p);
  else quest_score_kernel<T, D, 0><<<grid, kScoreThreads, 0, s->stream>>>(p);
  KV_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_score(Stream* s, const ScoreParams& p, dim3 grid) {
  switch (p.a.kv.head_dim) {
    case 64: launch_score_d<T, 64>(s, p, grid); break;
    case 128: launch_score_d<T, 128>(s, p, grid); break;
    default: launch_score_d<T, 256>(s, p, grid); break;
  }
}

// ---------------------------------------------------------------------------- select

constexpr int kSelectThreads = 512;
constexpr int kSelectWarps = kSelectThreads / 32;

struct SelectParams {
  QuestSelectArgs a;
  int64_t max_pages;
  const uint32_t* keys;
  DeviceErrorRecord* err;
};

// Exclusive prefix sum over the block in thread order; *total gets the block's sum. Every
// thread of the block must call it.
__device__ __forceinline__ unsigned long long block_exclusive_scan(unsigned long long v, unsigned long long* s_warp,
                                                                   unsigned long long* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned long long x = v;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const unsigned long long y = __shfl_up_sync(0xffffffffu, x, off);
    if (lane >= off) x += y;
  }
  if (lane == 31) s_warp[warp] = x;
  __syncthreads();
  if (warp == 0) {
    unsigned long long w = lane < kSelectWarps ? s_warp[lane] : 0ull;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const unsigned long long y = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) w += y;
    }
    if (lane < kSelectWarps) s_warp[lane] = w;
  }
  __syncthreads();
  const unsigned long long before = warp > 0 ? s_warp[warp - 1] : 0ull;
  *total = s_warp[kSelectWarps - 1];
  __syncthreads();  // s_warp is reused by the next call
  return before + x - v;
}

__global__ void __launch_bounds__(kSelectThreads) quest_select_kernel(SelectParams p) {
  __shared__ uint32_t s_hist[256];
  __shared__ unsigned long long s_warp[kSelectWarps];
  __shared__ uint32_t s_digit, s_above;
  const QuestSelectArgs& a = p.a;
  const int64_t bh = blockIdx.x;
  const int32_t b = static_cast<int32_t>(bh / a.kv.num_kv_heads);
  const int32_t h = static_cast<int32_t>(bh % a.kv.num_kv_heads);
  const int tid = threadIdx.x;
  const int32_t len = a.table.kv_lens[b];
  int32_t* idx = a.indices_out + bh * a.out_stride;
  if (len < 0 || len > a.max_kv_len) {  // nothing selected; the next synchronize fails
    if (tid == 0) {
      if (h == 0) record_device_error(p.err, kDeviceErrorKvLenOutOfRange, b, len, a.max_kv_len);
      a.counts_out[bh] = 0;
    }
    return;
  }
  const int64_t n = (static_cast<int64_t>(len) + a.kv.page_tokens - 1) / a.kv.page_tokens;
  const int64_t table_row = b * a.table.seq_stride + h * a.table.head_stride;
  auto check_page = [&](int64_t j) {
    const int32_t page = a.table.pages[table_row + j];
    if (page < 0 || page >= a.kv.num_pages) record_device_error(p.err, kDeviceErrorPageIdOutOfRange, table_row + j, page, a.kv.num_pages);
  };
  if (n <= a.top_k) {  // every page, nothing ranked
    for (int64_t j = tid; j < n; j += kSelectThreads) {
      check_page(j);
      idx[j] = static_cast<int32_t>(j);
    }
    if (tid == 0) a.counts_out[bh] = static_cast<int32_t>(n);
    return;
  }
  if (tid == 0) {
    check_page(n - 1);
    idx[a.top_k - 1] = static_cast<int32_t>(n - 1);
    a.counts_out[bh] = a.top_k;
  }
  const int64_t m = n - 1;
  uint32_t remaining = static_cast<uint32_t>(a.top_k - 1);  // best pages still to find, < m
  if (remaining == 0) return;
  const uint32_t* keys = p.keys + bh * p.max_pages;

  // Radix select: after the passes, T = prefix is the remaining-th largest key overall, and
  // `remaining` says how many keys equal to T are taken.
  uint32_t prefix = 0, mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += kSelectThreads) s_hist[i] = 0;
    __syncthreads();
    for (int64_t j = tid; j < m; j += kSelectThreads) {
      const uint32_t key = keys[j];
      if ((key & mask) == prefix) atomicAdd(&s_hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid < 32) {
      // Lane l owns digits 255 - 8l .. 248 - 8l, walked from the largest down.
      uint32_t c[8], sum = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        c[e] = s_hist[255 - 8 * tid - e];
        sum += c[e];
      }
      uint32_t incl = sum;
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const uint32_t y = __shfl_up_sync(0xffffffffu, incl, off);
        if (tid >= off) incl += y;
      }
      uint32_t cum = incl - sum;  // keys (under the prefix) with a larger digit than this lane's
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        if (cum < remaining && cum + c[e] >= remaining) {  // exactly one (lane, e) holds
          s_digit = static_cast<uint32_t>(255 - 8 * tid - e);
          s_above = cum;
        }
        cum += c[e];
      }
    }
    __syncthreads();
    remaining -= s_above;
    prefix |= s_digit << shift;
    mask |= 255u << shift;
    __syncthreads();  // s_hist, s_digit and s_above are rewritten by the next pass
  }
  const uint32_t threshold = prefix;

  // Ordered pass: (pages above T) << 32 | (pages equal to T), counted before each j.
  unsigned long long carry = 0;
  for (int64_t base = 0; base < m; base += kSelectThreads) {  // uniform over the block
    const int64_t j = base + tid;
    const uint32_t key = j < m ? keys[j] : 0u;
    const bool gt = j < m && key > threshold;
    const bool eq = j < m && key == threshold;
    const unsigned long long v = (static_cast<unsigned long long>(gt) << 32) | static_cast<unsigned long long>(eq);
    unsigned long long total;
    const unsigned long long before = block_exclusive_scan(v, s_warp, &total) + carry;
    const uint32_t gt_before = static_cast<uint32_t>(before >> 32);
    const uint32_t eq_before = static_cast<uint32_t>(before & 0xffffffffull);
    if (gt || (eq && eq_before < remaining)) idx[gt_before + (eq_before < remaining ? eq_before : remaining)] = static_cast<int32_t>(j);
    carry += total;
  }
}

}  // namespace

void page_summary_update(Stream* s, const PageSummaryArgs& a) {
  DeviceGuard guard(s->device);
  const int32_t heads = a.kv.head_stride == 0 ? 1 : a.kv.num_kv_heads;
  const int64_t items = static_cast<int64_t>(a.num_update) * heads;
  if (items == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>(items, int64_t{16} * multiprocessor_count(s->device)));
  if (a.dtype == KV_DTYPE_BF16) launch_summary<uint16_t>(s, a, heads, items, blocks);
  else launch_summary<uint32_t>(s, a, heads, items, blocks);
}

void quest_select(Stream* s, const QuestSelectArgs& a) {
  DeviceGuard guard(s->device);
  const int64_t bh = static_cast<int64_t>(a.batch) * a.kv.num_kv_heads;
  if (bh == 0) return;
  const int64_t max_pages = (static_cast<int64_t>(a.max_kv_len) + a.kv.page_tokens - 1) / a.kv.page_tokens;
  if (max_pages > a.top_k) {  // some sequence may need ranking
    const int64_t candidates = max_pages - 1;
    const int64_t groups = kScoreThreads / (a.kv.head_dim / 8);
    const int64_t min_split = groups * kUnroll;  // each lane group ranks kUnroll pages at least
    const int64_t target_blocks = int64_t{8} * multiprocessor_count(s->device);
    int64_t splits = std::max<int64_t>(1, (target_blocks + bh - 1) / bh);
    splits = std::min<int64_t>({splits, (candidates + min_split - 1) / min_split, 65535});
    int64_t per_split = (candidates + splits - 1) / splits;
    per_split = (per_split + groups - 1) / groups * groups;
    splits = (candidates + per_split - 1) / per_split;
    ScoreParams p;
    p.a = a;
    p.group = a.num_q_heads / a.kv.num_kv_heads;
    p.max_pages = max_pages;
    p.pages_per_split = per_split;
    p.keys = static_cast<uint32_t*>(a.workspace);
    p.err = s->error_record;
    const dim3 grid(static_cast<unsigned>(bh), static_cast<unsigned>(splits));
    if (a.dtype == KV_DTYPE_BF16) launch_score<uint16_t>(s, p, grid);
    else launch_score<float>(s, p, grid);
  }
  SelectParams sp;
  sp.a = a;
  sp.max_pages = max_pages;
  sp.keys = static_cast<const uint32_t*>(a.workspace);
  sp.err = s->error_record;
  quest_select_kernel<<<static_cast<unsigned>(bh), kSelectThreads, 0, s->stream>>>(sp);
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace kv::cuda
