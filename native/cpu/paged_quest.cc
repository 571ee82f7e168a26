// Quest on the CPU. Summaries: one task per (listed page, KV head) walks the valid rows once.
// Selection: one task per (sequence, KV head) scores the pages in fp32 (channels summed in
// order), then ranks them with the shared score key (core/paged_quest_order.h): larger key
// first, the lower page on ties.
#include "cpu/paged_quest.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/paged_quest_order.h"
#include "cpu/bf16.h"
#include "cpu/parallel.h"

namespace kv::cpu {
namespace {

inline float to_float(float x) { return x; }
inline float to_float(uint16_t x) { return bf16_to_float(x); }
inline uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline uint16_t bits_of(uint16_t x) { return x; }
inline void from_bits(uint32_t u, float* out) { std::memcpy(out, &u, sizeof u); }
inline void from_bits(uint16_t u, uint16_t* out) { *out = u; }

template <typename T>
using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>;

template <typename T>
void summary_typed(const PageSummaryArgs& a) {
  const int32_t d = a.kv.head_dim;
  const int32_t heads = a.kv.head_stride == 0 ? 1 : a.kv.num_kv_heads;
  const T* k = static_cast<const T*>(a.kv.k);
  T* out = static_cast<T*>(a.summaries.data);
  const int64_t tasks = static_cast<int64_t>(a.num_update) * heads;
  parallel_for(tasks, 16, [&](int64_t begin, int64_t end) {
    std::vector<Bits<T>> lo(d), hi(d);
    for (int64_t task = begin; task < end; ++task) {
      const int32_t i = static_cast<int32_t>(task / heads);
      const int32_t h = static_cast<int32_t>(task % heads);
      const int64_t page = a.pages[i];
      const int32_t rows = a.valid_tokens[i];
      for (int32_t t = 0; t < rows; ++t) {
        const T* row = k + a.kv.offset(page, h, t);
        for (int32_t c = 0; c < d; ++c) {
          const Bits<T> key = total_order_key(bits_of(row[c]));
          if (t == 0 || key < lo[c]) lo[c] = key;
          if (t == 0 || key > hi[c]) hi[c] = key;
        }
      }
      T* dst = out + a.summaries.offset(page, h);
      for (int32_t c = 0; c < d; ++c) {
        from_bits(total_order_bits(lo[c]), dst + c);
        from_bits(total_order_bits(hi[c]), dst + d + c);
      }
    }
  });
}

template <typename T>
void select_typed(const QuestSelectArgs& a) {
  const int32_t d = a.kv.head_dim;
  const int32_t hkv = a.kv.num_kv_heads;
  const int32_t g = a.num_q_heads / hkv;
  const int32_t p = a.kv.page_tokens;
  const T* q = static_cast<const T*>(a.q);
  const T* sums = static_cast<const T*>(a.summaries.data);
  parallel_for(static_cast<int64_t>(a.batch) * hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(static_cast<size_t>(g) * d);
    std::vector<uint64_t> ranked;  // (key << 32) | ~j: larger is better, lower j wins ties
    std::vector<int32_t> chosen;
    for (int64_t task = begin; task < end; ++task) {
      const int32_t b = static_cast<int32_t>(task / hkv);
      const int32_t h = static_cast<int32_t>(task % hkv);
      const int64_t n = (static_cast<int64_t>(a.table.kv_lens[b]) + p - 1) / p;
      int32_t* idx = a.indices_out + task * a.out_stride;
      if (n <= a.top_k) {
        for (int64_t j = 0; j < n; ++j) idx[j] = static_cast<int32_t>(j);
        a.counts_out[task] = static_cast<int32_t>(n);
        continue;
      }
      const T* qh = q + (static_cast<int64_t>(b) * a.num_q_heads + static_cast<int64_t>(h) * g) * d;
      for (int64_t i = 0; i < static_cast<int64_t>(g) * d; ++i) qf[i] = to_float(qh[i]);
      ranked.clear();
      for (int64_t j = 0; j + 1 < n; ++j) {
        const T* row = sums + a.summaries.offset(a.table.page(b, h, j), h);
        float best = 0.f;
        for (int32_t gi = 0; gi < g; ++gi) {
          const float* qg = qf.data() + static_cast<int64_t>(gi) * d;
          float acc = 0.f;
          for (int32_t c = 0; c < d; ++c) {
            const float x = qg[c];
            acc += std::fmax(x * to_float(row[c]), x * to_float(row[d + c]));
          }
          best = gi == 0 ? acc : std::fmax(best, acc);
        }
        const uint64_t key = quest_score_key(bits_of(best));
        ranked.push_back((key << 32) | (~static_cast<uint32_t>(j)));
      }
      const size_t keep = static_cast<size_t>(a.top_k - 1);
      std::nth_element(ranked.begin(), ranked.begin() + keep, ranked.end(), std::greater<uint64_t>());
      chosen.clear();
      for (size_t i = 0; i < keep; ++i) chosen.push_back(static_cast<int32_t>(~static_cast<uint32_t>(ranked[i])));
      std::sort(chosen.begin(), chosen.end());
      for (size_t i = 0; i < keep; ++i) idx[i] = chosen[i];
      idx[keep] = static_cast<int32_t>(n - 1);
      a.counts_out[task] = a.top_k;
    }
  });
}

}  // namespace

void page_summary_update(const PageSummaryArgs& a) {
  for (int32_t i = 0; i < a.num_update; ++i) {
    if (a.pages[i] < 0 || a.pages[i] >= a.kv.num_pages)
      fail(KV_STATUS_INVALID_ARGUMENT, "pages[", i, "] = ", a.pages[i], " is outside [0, kv.num_pages = ",
           a.kv.num_pages, ")");
    if (a.valid_tokens[i] < 1 || a.valid_tokens[i] > a.kv.page_tokens)
      fail(KV_STATUS_INVALID_ARGUMENT, "valid_tokens[", i, "] = ", a.valid_tokens[i],
           " is outside [1, kv.page_tokens = ", a.kv.page_tokens, "]");
  }
  if (a.dtype == KV_DTYPE_BF16) summary_typed<uint16_t>(a);
  else summary_typed<float>(a);
}

void quest_select(const QuestSelectArgs& a) {
  const int32_t p = a.kv.page_tokens;
  for (int32_t b = 0; b < a.batch; ++b) {
    const int32_t len = a.table.kv_lens[b];
    if (len < 0 || len > a.max_kv_len)
      fail(KV_STATUS_INVALID_ARGUMENT, "table.kv_lens[", b, "] = ", len, " is outside [0, max_kv_len = ",
           a.max_kv_len, "]");
    const int64_t n = (static_cast<int64_t>(len) + p - 1) / p;
    for (int32_t h = 0; h < a.kv.num_kv_heads; ++h)
      for (int64_t j = 0; j < n; ++j) {
        const int32_t page = a.table.page(b, h, j);
        if (page < 0 || page >= a.kv.num_pages)
          fail(KV_STATUS_INVALID_ARGUMENT, "table.pages entry (sequence ", b, ", KV head ", h, ", page ", j,
               ") = ", page, " is outside [0, kv.num_pages = ", a.kv.num_pages, ")");
      }
  }
  if (a.dtype == KV_DTYPE_BF16) select_typed<uint16_t>(a);
  else select_typed<float>(a);
}

}  // namespace kv::cpu
