// Paged KV append and paged decode on the CPU: the reference semantics of the CUDA kernels.
//
// Indices that live in caller memory (slots, page ids, kv_lens, selections) are all checked
// before anything is written, so a bad index fails the call with nothing changed.
//
// Decode: one task owns (sequence, KV head, split of its page list) and runs the whole GQA
// group over the task's tokens, so each K/V row is read once per group. Tokens are scored in
// blocks of 64 (in page-list order) with one online-softmax rescale per block, as attend_rows
// does for contiguous K/V. Splits of one (sequence, KV head) are combined with the attention
// state merge, as on the GPU.
#include "cpu/paged_decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

constexpr int64_t kBlockTokens = 64;
constexpr int64_t kMinSplitTokens = 512;

int64_t pages_of(int64_t kv_len, int32_t page_tokens) { return (kv_len + page_tokens - 1) / page_tokens; }

// Number of logical pages (sequence b, KV head h) attends and the i-th of them.
struct PageList {
  const PagedDecodeArgs* a;
  int32_t b, h;
  int64_t kv_len;

  int64_t count() const {
    if (!a->select.indices) return pages_of(kv_len, a->kv.page_tokens);
    return a->select.counts[static_cast<int64_t>(b) * a->kv.num_kv_heads + h];
  }
  int64_t logical(int64_t i) const {
    if (!a->select.indices) return i;
    return a->select.indices[(static_cast<int64_t>(b) * a->kv.num_kv_heads + h) * a->select.stride + i];
  }
};

// Checks kv_lens, selections and every page id decode will read; fails naming the entry.
void validate_decode(const PagedDecodeArgs& a) {
  const int32_t H = a.kv.num_kv_heads, P = a.kv.page_tokens;
  for (int32_t b = 0; b < a.batch; ++b) {
    const int64_t len = a.table.kv_lens[b];
    if (len < 0 || len > a.max_kv_len)
      fail(KV_STATUS_INVALID_ARGUMENT, "table.kv_lens[", b, "] = ", len, " is outside [0, max_kv_len = ", a.max_kv_len,
           "]");
    const int64_t n_pages = pages_of(len, P);
    for (int32_t h = 0; h < H; ++h) {
      PageList list{&a, b, h, len};
      const int64_t count = list.count();
      if (a.select.indices) {
        if (count < 0 || count > a.select.stride)
          fail(KV_STATUS_INVALID_ARGUMENT, "select.counts[", static_cast<int64_t>(b) * H + h, "] = ", count,
               " is outside [0, select.stride = ", a.select.stride, "]");
        if (count > n_pages)  // distinct in-range indices never number more than the pages
          fail(KV_STATUS_INVALID_ARGUMENT, "select.counts[", static_cast<int64_t>(b) * H + h, "] = ", count,
               " exceeds the sequence's ceil(kv_lens[", b, "] / page_tokens) = ", n_pages,
               " pages (indices must be distinct)");
      }
      for (int64_t i = 0; i < count; ++i) {
        const int64_t j = list.logical(i);
        if (j < 0 || j >= n_pages)
          fail(KV_STATUS_INVALID_ARGUMENT, "select.indices[", (static_cast<int64_t>(b) * H + h) * a.select.stride + i,
               "] = ", j, " is outside [0, ceil(kv_lens[", b, "] / page_tokens) = ", n_pages, ")");
        const int64_t page = a.table.page(b, h, j);
        if (page < 0 || page >= a.kv.num_pages)
          fail(KV_STATUS_INVALID_ARGUMENT, "table.pages[", b * a.table.seq_stride + h * a.table.head_stride + j,
               "] = ", page, " (sequence ", b, ", KV head ", h, ", logical page ", j, ") is outside [0, kv.num_pages = ",
               a.kv.num_pages, ")");
      }
    }
  }
}

// Attention state of g query heads (q [g][d] fp32) over the tokens of pages [p_begin, p_end)
// of a page list; o_out [g][d] normalized, lse_out [g] (empty: 0, -inf).
template <typename T>
void attend_pages(const PagedDecodeArgs& a, const PageList& list, int64_t p_begin, int64_t p_end, const float* q,
                  int32_t g, float* o_out, float* lse_out, bool avx2, std::vector<float>& scratch) {
  const int32_t d = a.kv.head_dim, P = a.kv.page_tokens;
  const T* k_base = static_cast<const T*>(a.kv.k);
  const T* v_base = static_cast<const T*>(a.kv.v);
  // Row offsets (elements) of the task's tokens in page-list order.
  std::vector<int64_t> offsets;
  for (int64_t i = p_begin; i < p_end; ++i) {
    const int64_t j = list.logical(i);
    const int64_t page = a.table.page(list.b, list.h, j);
    const int64_t n = std::min<int64_t>(P, list.kv_len - j * P);
    for (int64_t t = 0; t < n; ++t) offsets.push_back(a.kv.offset(page, list.h, static_cast<int32_t>(t)));
  }
  const int64_t len = static_cast<int64_t>(offsets.size());
  scratch.assign(static_cast<size_t>(g) * d + static_cast<size_t>(g) * kBlockTokens, 0.f);
  float* acc = scratch.data();                  // [g][d] unnormalized output
  float* s = acc + static_cast<size_t>(g) * d;  // [g][kBlockTokens] scores, then weights
  std::vector<float> m(g, -std::numeric_limits<float>::infinity()), l(g, 0.f);
  for (int64_t t0 = 0; t0 < len; t0 += kBlockTokens) {
    const int64_t nt = std::min(kBlockTokens, len - t0);
    for (int64_t t = 0; t < nt; ++t) {
      const T* kt = k_base + offsets[t0 + t];
      for (int32_t hh = 0; hh < g; ++hh) s[hh * kBlockTokens + t] = a.sm_scale * dot(q + hh * d, kt, d, avx2);
    }
    for (int32_t hh = 0; hh < g; ++hh) {
      float* sh = s + hh * kBlockTokens;
      const float m_new = std::max(m[hh], *std::max_element(sh, sh + nt));
      const float rescale = std::exp(m[hh] - m_new);  // exp(-inf) = 0 on the first block
      float* acc_h = acc + static_cast<int64_t>(hh) * d;
      if (rescale != 1.f)
        for (int32_t c = 0; c < d; ++c) acc_h[c] *= rescale;
      l[hh] *= rescale;
      for (int64_t t = 0; t < nt; ++t) {
        sh[t] = std::exp(sh[t] - m_new);
        l[hh] += sh[t];
      }
      m[hh] = m_new;
    }
    for (int64_t t = 0; t < nt; ++t) {
      const T* vt = v_base + offsets[t0 + t];
      for (int32_t hh = 0; hh < g; ++hh) axpy(acc + static_cast<int64_t>(hh) * d, s[hh * kBlockTokens + t], vt, d, avx2);
    }
  }
  for (int32_t hh = 0; hh < g; ++hh) {
    float* out = o_out + static_cast<int64_t>(hh) * d;
    if (l[hh] == 0.f) {  // no tokens: the empty state
      std::fill(out, out + d, 0.f);
      lse_out[hh] = -std::numeric_limits<float>::infinity();
      continue;
    }
    const float inv = 1.f / l[hh];
    for (int32_t c = 0; c < d; ++c) out[c] = acc[static_cast<int64_t>(hh) * d + c] * inv;
    lse_out[hh] = m[hh] + std::log(l[hh]);
  }
}

template <typename T>
void decode_typed(const PagedDecodeArgs& a) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  const int32_t d = a.kv.head_dim, H = a.kv.num_kv_heads, P = a.kv.page_tokens;
  const int32_t g = a.num_q_heads / H;
  const int64_t groups = static_cast<int64_t>(a.batch) * H;
  const int64_t rows = static_cast<int64_t>(a.batch) * a.num_q_heads;

  // Split the page lists when there are fewer groups than threads to keep busy.
  int64_t splits = 1;
  const int64_t threads = thread_count();
  if (groups < 2 * threads && a.max_kv_len >= 2 * kMinSplitTokens)
    splits = std::min<int64_t>((2 * threads + groups - 1) / groups, a.max_kv_len / kMinSplitTokens);
  const int64_t max_pages = pages_of(a.max_kv_len, P);
  splits = std::max<int64_t>(1, std::min(splits, max_pages));

  std::vector<float> part_o(static_cast<size_t>(splits * rows * d));
  std::vector<float> part_lse(static_cast<size_t>(splits * rows));
  parallel_for(groups * splits, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch, qf(static_cast<size_t>(g) * d);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t split = i % splits, group = i / splits;
      const int32_t b = static_cast<int32_t>(group / H), h = static_cast<int32_t>(group % H);
      PageList list{&a, b, h, a.table.kv_lens[b]};
      const int64_t count = list.count();
      const int64_t row0 = static_cast<int64_t>(b) * a.num_q_heads + static_cast<int64_t>(h) * g;
      const T* q = static_cast<const T*>(a.q) + row0 * d;
      for (int64_t e = 0; e < static_cast<int64_t>(g) * d; ++e) qf[e] = load_elem(q, e);
      attend_pages<T>(a, list, count * split / splits, count * (split + 1) / splits, qf.data(), g,
                      part_o.data() + (split * rows + row0) * d, part_lse.data() + split * rows + row0, avx2, scratch);
    }
  });

  merge_split_states(part_o.data(), part_lse.data(), splits, rows, static_cast<int32_t>(d), a.dtype, a.o, a.lse);
}

}  // namespace

void paged_append(const PagedAppendArgs& a) {
  const int32_t H = a.kv.num_kv_heads;
  const int64_t capacity = a.kv.num_pages * a.kv.page_tokens;
  const int64_t slots_per_token = a.slots_head_stride == 0 ? 1 : H;
  for (int64_t i = 0; i < a.num_tokens * slots_per_token; ++i) {
    const int64_t slot = a.slots[i];
    if (slot >= capacity)
      fail(KV_STATUS_INVALID_ARGUMENT, "slots[", i, "] = ", slot, " is outside [0, kv.num_pages * kv.page_tokens = ",
           capacity, ") (negative slots skip their row)");
  }
  const int64_t row_bytes = static_cast<int64_t>(a.kv.head_dim) * dtype_size(a.dtype);
  const int64_t esize = dtype_size(a.dtype);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / row_bytes);
  parallel_for(a.num_tokens * H, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t token = r / H;
      const int32_t h = static_cast<int32_t>(r % H);
      const int64_t slot = a.slots[token * slots_per_token + (a.slots_head_stride == 0 ? 0 : h)];
      if (slot < 0) continue;
      const int64_t dst = a.kv.offset(slot / a.kv.page_tokens, h, static_cast<int32_t>(slot % a.kv.page_tokens)) * esize;
      const int64_t src = r * row_bytes;
      std::memcpy(static_cast<char*>(a.kv.k) + dst, static_cast<const char*>(a.k) + src, static_cast<size_t>(row_bytes));
      std::memcpy(static_cast<char*>(a.kv.v) + dst, static_cast<const char*>(a.v) + src, static_cast<size_t>(row_bytes));
    }
  });
}

void paged_decode(const PagedDecodeArgs& a) {
  validate_decode(a);
  if (a.dtype == KV_DTYPE_BF16) decode_typed<uint16_t>(a);
  else decode_typed<float>(a);
}

}  // namespace kv::cpu
