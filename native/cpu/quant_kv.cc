// Quantized KV blocks on the CPU: the reference semantics of kv_quant_pack/unpack/decode_async.
//
// Pack: one task per (job, KV head) quantizes the group's keys per channel (the boosted channels
// at 4 bits) and its values per token with core/quant_kv.h's quantizer, writing codes through
// the same index math the CUDA kernel uses, so both backends produce the same bytes.
//
// Decode: one task owns (sequence, KV head, split of its segment list). A segment is a quantized
// group, dequantized into fp32 rows (the very values kv_quant_unpack_async writes before their
// rounding to the page dtype), or up to 64 tokens of the bf16 pages (the sink and the newest
// tokens). Each segment is one online-softmax block, as in the paged decode; splits are merged
// with the attention-state merge.
#include "cpu/quant_kv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "cpu/bf16.h"
#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

using quant::Layout;
using quant::QuantKv;

constexpr int64_t kBf16Segment = 64;     // bf16 tokens per online-softmax block
constexpr int64_t kMinSplitTokens = 512;

uint8_t* block_bytes(const QuantKv& q, int64_t block, int32_t head) {
  return static_cast<uint8_t*>(q.blocks) + q.offset(block, head);
}

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// The group's K (or V) rows of one head as fp32: rows[t * D + d], t < G.
template <typename T>
void gather_group(const PagedKv& kv, const void* base, const int32_t* pages, int32_t G, int32_t head, float* rows) {
  const int32_t P = kv.page_tokens, D = kv.head_dim;
  const T* b = static_cast<const T*>(base);
  for (int32_t t = 0; t < G; ++t) {
    const T* row = b + kv.offset(pages[t / P], head, t % P);
    for (int32_t d = 0; d < D; ++d) rows[static_cast<int64_t>(t) * D + d] = load_elem(row, d);
  }
}

// Quantizes one (group, head): k and v are [G][D] fp32, out the (block, head) bytes.
void pack_head(const float* k, const float* v, int32_t G, int32_t D, int32_t nb, const Layout& L, uint8_t* out) {
  std::memset(out, 0, L.bytes);
  const int32_t nbp = quant::boost_slots(nb);
  std::vector<float> sum_abs(D, 0.f), mn(D), mx(D);
  std::vector<uint8_t> nan(D, 0);
  for (int32_t d = 0; d < D; ++d) {
    mn[d] = std::numeric_limits<float>::infinity();
    mx[d] = -std::numeric_limits<float>::infinity();
  }
  for (int32_t t = 0; t < G; ++t) {  // in token order: the sums are the CUDA kernel's, bit for bit
    for (int32_t d = 0; d < D; ++d) {
      const float x = k[static_cast<int64_t>(t) * D + d];
      sum_abs[d] += std::fabs(x);
      if (quant::is_nan(x)) nan[d] = 1;
      mn[d] = std::min(mn[d], x);
      mx[d] = std::max(mx[d], x);
    }
  }
  // Boosted channels and their slots (ascending channel order).
  std::vector<int32_t> slot(D, -1);
  uint8_t* boost = out + L.boost;
  for (int32_t j = 0; j < nbp; ++j) boost[j] = quant::kNoChannel;
  int32_t next = 0;
  for (int32_t d = 0; d < D; ++d) {
    if (quant::boost_rank(sum_abs.data(), D, d) < nb) {
      slot[d] = next;
      boost[next++] = static_cast<uint8_t>(d);
    }
  }
  uint8_t* k_low = out + L.k_low;
  uint8_t* k_high = out + L.k_high;
  for (int32_t d = 0; d < D; ++d) {
    const int32_t levels = slot[d] >= 0 ? 15 : 3;
    const quant::Grid g = quant::make_grid(mn[d], mx[d], nan[d] != 0, levels);
    store_u16(out + L.k_scale + 2 * d, g.scale);
    store_u16(out + L.k_min + 2 * d, g.min);
    const float scale = quant::half_to_float(g.scale), lo = quant::half_to_float(g.min);
    for (int32_t t = 0; t < G; ++t) {
      const uint32_t code = quant::quantize(k[static_cast<int64_t>(t) * D + d], scale, lo, levels);
      quant::write_code(k_low, D, t, d, code & 3u);
      if (slot[d] >= 0) quant::write_code(k_high, nbp, t, slot[d], code >> 2);
    }
  }
  uint8_t* v_codes = out + L.v_codes;
  for (int32_t t = 0; t < G; ++t) {
    const float* row = v + static_cast<int64_t>(t) * D;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    bool has_nan = false;
    for (int32_t d = 0; d < D; ++d) {
      has_nan |= quant::is_nan(row[d]);
      lo = std::min(lo, row[d]);
      hi = std::max(hi, row[d]);
    }
    const quant::Grid g = quant::make_grid(lo, hi, has_nan, 3);
    store_u16(out + L.v_scale + 2 * t, g.scale);
    store_u16(out + L.v_min + 2 * t, g.min);
    const float scale = quant::half_to_float(g.scale), m = quant::half_to_float(g.min);
    for (int32_t d = 0; d < D; ++d) quant::write_code(v_codes, G, d, t, quant::quantize(row[d], scale, m, 3));
  }
}

// Dequantizes one (block, head) into k and v [G][D] fp32.
void unpack_head(const uint8_t* in, int32_t G, int32_t D, int32_t nb, const Layout& L, float* k, float* v) {
  const int32_t nbp = quant::boost_slots(nb);
  std::vector<int32_t> slot(D, -1);
  const uint8_t* boost = in + L.boost;
  for (int32_t j = 0; j < nbp; ++j)
    if (boost[j] != quant::kNoChannel && boost[j] < D) slot[boost[j]] = j;
  const uint8_t* k_low = in + L.k_low;
  const uint8_t* k_high = in + L.k_high;
  for (int32_t d = 0; d < D; ++d) {
    const float scale = quant::half_to_float(load_u16(in + L.k_scale + 2 * d));
    const float lo = quant::half_to_float(load_u16(in + L.k_min + 2 * d));
    for (int32_t t = 0; t < G; ++t) {
      uint32_t code = quant::read_code(k_low, D, t, d);
      if (slot[d] >= 0) code |= quant::read_code(k_high, nbp, t, slot[d]) << 2;
      k[static_cast<int64_t>(t) * D + d] = quant::dequantize(code, scale, lo);
    }
  }
  const uint8_t* v_codes = in + L.v_codes;
  for (int32_t t = 0; t < G; ++t) {
    const float scale = quant::half_to_float(load_u16(in + L.v_scale + 2 * t));
    const float m = quant::half_to_float(load_u16(in + L.v_min + 2 * t));
    for (int32_t d = 0; d < D; ++d)
      v[static_cast<int64_t>(t) * D + d] = quant::dequantize(quant::read_code(v_codes, G, d, t), scale, m);
  }
}

void check_block_ids(const int32_t* blocks, int32_t n, int64_t num_blocks, const char* name, bool distinct) {
  for (int32_t i = 0; i < n; ++i)
    if (blocks[i] < 0 || blocks[i] >= num_blocks)
      fail(KV_STATUS_INVALID_ARGUMENT, name, "[", i, "] = ", blocks[i], " is outside [0, num_blocks = ", num_blocks, ")");
  if (!distinct) return;
  std::vector<int32_t> sorted(blocks, blocks + n);
  std::sort(sorted.begin(), sorted.end());
  for (int32_t i = 1; i < n; ++i)
    if (sorted[i] == sorted[i - 1])
      fail(KV_STATUS_INVALID_ARGUMENT, name, " names block ", sorted[i], " twice (each job writes its own block)");
}

void check_page_ids(const int32_t* pages, int64_t n, int64_t num_pages, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (pages[i] < 0 || pages[i] >= num_pages)
      fail(KV_STATUS_INVALID_ARGUMENT, name, "[", i, "] = ", pages[i], " is outside [0, num_pages = ", num_pages, ")");
}

// --- decode ------------------------------------------------------------------------------------

// The tokens of sequence b outside its quantized span: [0, a_len) then [b_start, len).
struct Bf16Span {
  int64_t a_len = 0, b_start = 0, len = 0;
  int64_t count() const { return a_len + std::max<int64_t>(0, len - b_start); }
  int64_t token(int64_t i) const { return i < a_len ? i : b_start + (i - a_len); }
};

Bf16Span bf16_span(const QuantDecodeArgs& a, int32_t b) {
  const int64_t len = a.table.kv_lens[b], count = a.qtable.counts[b];
  Bf16Span s;
  s.len = len;
  s.a_len = std::min<int64_t>(a.qkv.sink_tokens, len);
  s.b_start = std::max<int64_t>(s.a_len, a.qkv.sink_tokens + count * a.qkv.group_tokens);
  return s;
}

int64_t selected_groups(const QuantDecodeArgs& a, int32_t b, int32_t h) {
  if (!a.select.indices) return a.qtable.counts[b];
  return a.select.counts[static_cast<int64_t>(b) * a.kv.num_kv_heads + h];
}

int64_t group_of(const QuantDecodeArgs& a, int32_t b, int32_t h, int64_t i) {
  if (!a.select.indices) return i;
  return a.select.indices[(static_cast<int64_t>(b) * a.kv.num_kv_heads + h) * a.select.stride + i];
}

void validate_decode(const QuantDecodeArgs& a) {
  const int32_t H = a.kv.num_kv_heads, P = a.kv.page_tokens, G = a.qkv.group_tokens;
  for (int32_t b = 0; b < a.batch; ++b) {
    const int64_t len = a.table.kv_lens[b];
    if (len < 0 || len > a.max_kv_len)
      fail(KV_STATUS_INVALID_ARGUMENT, "table.kv_lens[", b, "] = ", len, " is outside [0, max_kv_len = ", a.max_kv_len,
           "]");
    const int64_t count = a.qtable.counts[b];
    const int64_t room = len >= a.qkv.sink_tokens ? (len - a.qkv.sink_tokens) / G : 0;
    if (count < 0 || count > room)
      fail(KV_STATUS_INVALID_ARGUMENT, "qtable.counts[", b, "] = ", count, " is outside [0, ", room,
           "]: sink_tokens + counts * group_tokens must not pass kv_lens[", b, "] = ", len);
    for (int64_t j = 0; j < count; ++j) {
      const int64_t flat = b * a.qtable.seq_stride + j;
      const int32_t blk = a.qtable.blocks[flat];
      if (blk < 0 || blk >= a.qkv.num_blocks)
        fail(KV_STATUS_INVALID_ARGUMENT, "qtable.blocks[", flat, "] = ", blk, " (sequence ", b, ", group ", j,
             ") is outside [0, qkv.num_blocks = ", a.qkv.num_blocks, ")");
    }
    if (a.select.indices) {
      for (int32_t h = 0; h < H; ++h) {
        const int64_t list = static_cast<int64_t>(b) * H + h;
        const int64_t n = a.select.counts[list];
        if (n < 0 || n > a.select.stride || n > count)
          fail(KV_STATUS_INVALID_ARGUMENT, "block_select.counts[", list, "] = ", n, " is outside [0, min(stride = ",
               a.select.stride, ", qtable.counts[", b, "] = ", count, ")]");
        for (int64_t i = 0; i < n; ++i) {
          const int64_t j = a.select.indices[list * a.select.stride + i];
          if (j < 0 || j >= count)
            fail(KV_STATUS_INVALID_ARGUMENT, "block_select.indices[", list * a.select.stride + i, "] = ", j,
                 " is outside [0, qtable.counts[", b, "] = ", count, ")");
        }
      }
    }
    const Bf16Span span = bf16_span(a, b);
    for (int64_t i = 0; i < span.count(); i += 1) {
      const int64_t t = span.token(i);
      if (t % P != 0 && i != 0) continue;  // one check per page
      const int64_t flat = b * a.table.seq_stride + t / P;
      const int32_t page = a.table.pages[flat];
      if (page < 0 || page >= a.kv.num_pages)
        fail(KV_STATUS_INVALID_ARGUMENT, "table.pages[", flat, "] = ", page, " (sequence ", b, ", logical page ", t / P,
             ") is outside [0, kv.num_pages = ", a.kv.num_pages, ")");
    }
  }
}

// Online softmax of g heads over rows; the caller supplies K and V rows one block at a time.
struct State {
  int32_t g, d;
  std::vector<float> m, l, acc, s;
  State(int32_t g_, int32_t d_, int64_t block)
      : g(g_), d(d_), m(g_, -std::numeric_limits<float>::infinity()), l(g_, 0.f),
        acc(static_cast<size_t>(g_) * d_, 0.f), s(static_cast<size_t>(g_) * block) {}

  template <typename TR>
  void block(const float* q, float sm_scale, const TR* const* krows, const TR* const* vrows, int64_t n, int64_t stride,
             bool avx2) {
    for (int64_t t = 0; t < n; ++t)
      for (int32_t hh = 0; hh < g; ++hh) s[hh * stride + t] = sm_scale * dot(q + static_cast<int64_t>(hh) * d, krows[t], d, avx2);
    for (int32_t hh = 0; hh < g; ++hh) {
      float* sh = s.data() + hh * stride;
      const float m_new = std::max(m[hh], *std::max_element(sh, sh + n));
      if (m_new == -std::numeric_limits<float>::infinity()) continue;
      const float rescale = std::exp(m[hh] - m_new);
      float* acc_h = acc.data() + static_cast<int64_t>(hh) * d;
      if (rescale != 1.f)
        for (int32_t c = 0; c < d; ++c) acc_h[c] *= rescale;
      l[hh] *= rescale;
      for (int64_t t = 0; t < n; ++t) {
        sh[t] = std::exp(sh[t] - m_new);
        l[hh] += sh[t];
      }
      m[hh] = m_new;
    }
    for (int64_t t = 0; t < n; ++t)
      for (int32_t hh = 0; hh < g; ++hh)
        axpy(acc.data() + static_cast<int64_t>(hh) * d, s[hh * stride + t], vrows[t], d, avx2);
  }

  void finish(float* o_out, float* lse_out) const {
    for (int32_t hh = 0; hh < g; ++hh) {
      float* out = o_out + static_cast<int64_t>(hh) * d;
      if (!(l[hh] > 0.f) && !std::isnan(l[hh])) {
        std::fill(out, out + d, 0.f);
        lse_out[hh] = -std::numeric_limits<float>::infinity();
        continue;
      }
      const float inv = 1.f / l[hh];
      for (int32_t c = 0; c < d; ++c) out[c] = acc[static_cast<int64_t>(hh) * d + c] * inv;
      lse_out[hh] = m[hh] + std::log(l[hh]);
    }
  }
};

template <typename T>
void decode_typed(const QuantDecodeArgs& a) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  const int32_t D = a.kv.head_dim, H = a.kv.num_kv_heads, P = a.kv.page_tokens, G = a.qkv.group_tokens;
  const int32_t g = a.num_q_heads / H;
  const int64_t groups = static_cast<int64_t>(a.batch) * H;
  const int64_t rows = static_cast<int64_t>(a.batch) * a.num_q_heads;
  int64_t splits = 1;
  const int64_t threads = thread_count();
  if (groups < 2 * threads && a.max_kv_len >= 2 * kMinSplitTokens)
    splits = std::min<int64_t>((2 * threads + groups - 1) / groups, a.max_kv_len / kMinSplitTokens);
  splits = std::max<int64_t>(1, splits);
  std::vector<float> part_o(static_cast<size_t>(splits * rows * D));
  std::vector<float> part_lse(static_cast<size_t>(splits * rows));
  const T* k_base = static_cast<const T*>(a.kv.k);
  const T* v_base = static_cast<const T*>(a.kv.v);
  parallel_for(groups * splits, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(static_cast<size_t>(g) * D), kq(static_cast<size_t>(G) * D), vq(static_cast<size_t>(G) * D);
    std::vector<const float*> kf(G), vf(G);
    std::vector<const T*> kt(kBf16Segment), vt(kBf16Segment);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t split = i % splits, grp = i / splits;
      const int32_t b = static_cast<int32_t>(grp / H), h = static_cast<int32_t>(grp % H);
      const int64_t row0 = static_cast<int64_t>(b) * a.num_q_heads + static_cast<int64_t>(h) * g;
      const T* q = static_cast<const T*>(a.q) + row0 * D;
      for (int64_t e = 0; e < static_cast<int64_t>(g) * D; ++e) qf[e] = load_elem(q, e);
      const int64_t n_quant = selected_groups(a, b, h);
      const Bf16Span span = bf16_span(a, b);
      const int64_t n_bf16 = (span.count() + kBf16Segment - 1) / kBf16Segment;
      const int64_t n_seg = n_quant + n_bf16;
      State st(g, D, std::max<int64_t>(G, kBf16Segment));
      for (int64_t seg = n_seg * split / splits; seg < n_seg * (split + 1) / splits; ++seg) {
        if (seg < n_quant) {
          const int64_t j = group_of(a, b, h, seg);
          const int32_t blk = a.qtable.blocks[b * a.qtable.seq_stride + j];
          unpack_head(block_bytes(a.qkv, blk, h), G, D, a.qkv.boost_channels, a.qkv.layout, kq.data(), vq.data());
          for (int32_t t = 0; t < G; ++t) {
            kf[t] = kq.data() + static_cast<int64_t>(t) * D;
            vf[t] = vq.data() + static_cast<int64_t>(t) * D;
          }
          st.block<float>(qf.data(), a.sm_scale, kf.data(), vf.data(), G, std::max<int64_t>(G, kBf16Segment), avx2);
        } else {
          const int64_t i0 = (seg - n_quant) * kBf16Segment;
          const int64_t n = std::min(kBf16Segment, span.count() - i0);
          for (int64_t t = 0; t < n; ++t) {
            const int64_t tok = span.token(i0 + t);
            const int32_t page = a.table.pages[b * a.table.seq_stride + tok / P];
            const int64_t off = a.kv.offset(page, h, static_cast<int32_t>(tok % P));
            kt[t] = k_base + off;
            vt[t] = v_base + off;
          }
          st.block<T>(qf.data(), a.sm_scale, kt.data(), vt.data(), n, std::max<int64_t>(G, kBf16Segment), avx2);
        }
      }
      st.finish(part_o.data() + (split * rows + row0) * D, part_lse.data() + split * rows + row0);
    }
  });
  merge_split_states(part_o.data(), part_lse.data(), splits, rows, D, a.dtype, a.o, a.lse);
}

}  // namespace

void quant_pack(const QuantPackArgs& a) {
  const int32_t G = a.dst.group_tokens, P = a.src.page_tokens, D = a.dst.head_dim, H = a.dst.num_kv_heads;
  const int64_t per_job = G / P;
  check_page_ids(a.src_pages, a.num_jobs * per_job, a.src.num_pages, "src_pages");
  check_block_ids(a.dst_blocks, a.num_jobs, a.dst.num_blocks, "dst_blocks", true);
  parallel_for(static_cast<int64_t>(a.num_jobs) * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> k(static_cast<size_t>(G) * D), v(static_cast<size_t>(G) * D);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t job = i / H;
      const int32_t h = static_cast<int32_t>(i % H);
      const int32_t* pages = a.src_pages + job * per_job;
      if (a.dtype == KV_DTYPE_BF16) {
        gather_group<uint16_t>(a.src, a.src.k, pages, G, h, k.data());
        gather_group<uint16_t>(a.src, a.src.v, pages, G, h, v.data());
      } else {
        gather_group<float>(a.src, a.src.k, pages, G, h, k.data());
        gather_group<float>(a.src, a.src.v, pages, G, h, v.data());
      }
      pack_head(k.data(), v.data(), G, D, a.dst.boost_channels, a.dst.layout, block_bytes(a.dst, a.dst_blocks[job], h));
    }
  });
}

void quant_unpack(const QuantUnpackArgs& a) {
  const int32_t G = a.src.group_tokens, P = a.dst.page_tokens, D = a.src.head_dim, H = a.src.num_kv_heads;
  const int64_t per_job = G / P;
  check_block_ids(a.src_blocks, a.num_jobs, a.src.num_blocks, "src_blocks", false);
  check_page_ids(a.dst_pages, a.num_jobs * per_job, a.dst.num_pages, "dst_pages");
  parallel_for(static_cast<int64_t>(a.num_jobs) * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> k(static_cast<size_t>(G) * D), v(static_cast<size_t>(G) * D);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t job = i / H;
      const int32_t h = static_cast<int32_t>(i % H);
      unpack_head(block_bytes(a.src, a.src_blocks[job], h), G, D, a.src.boost_channels, a.src.layout, k.data(), v.data());
      const int32_t* pages = a.dst_pages + job * per_job;
      for (int32_t t = 0; t < G; ++t) {
        const int64_t off = a.dst.offset(pages[t / P], h, t % P);
        for (int32_t d = 0; d < D; ++d) {
          const float kx = k[static_cast<int64_t>(t) * D + d], vx = v[static_cast<int64_t>(t) * D + d];
          if (a.dtype == KV_DTYPE_BF16) {
            store_elem(static_cast<uint16_t*>(a.dst.k) + off, d, kx);
            store_elem(static_cast<uint16_t*>(a.dst.v) + off, d, vx);
          } else {
            store_elem(static_cast<float*>(a.dst.k) + off, d, kx);
            store_elem(static_cast<float*>(a.dst.v) + off, d, vx);
          }
        }
      }
    }
  });
}

void quant_dequantize_head(const QuantKv& q, int64_t block, int32_t head, float* k, float* v) {
  unpack_head(block_bytes(q, block, head), q.group_tokens, q.head_dim, q.boost_channels, q.layout, k, v);
}

void quant_decode(const QuantDecodeArgs& a) {
  validate_decode(a);
  if (a.dtype == KV_DTYPE_BF16) decode_typed<uint16_t>(a);
  else decode_typed<float>(a);
}

}  // namespace kv::cpu
