// kv_paged_prefill_async on the CPU, the reference semantics. The device-side metadata
// (q_indptr, kv_lens, the page ids) is host memory here, so it is validated completely before
// anything is written: a bad entry fails the call with its position and value.
//
// One task owns (sequence, KV head, block of up to kQueryBlock consecutive queries): it gathers
// the keys and values [0, last position of the block] of its KV head from the pages into
// contiguous scratch (in the KV dtype, bit-exact) and runs attend_rows (attention.cc) for each
// query's GQA group over keys [0, its position]. attend_rows's arithmetic depends only on the
// key values and the range, so the result equals kv_attention_prefill_async's on the same K/V
// laid out contiguously, bit for bit, for any thread count, page size or page order.
#include "cpu/paged_prefill.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "cpu/attention.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

constexpr int32_t kQueryBlock = 32;

struct Task {
  int32_t b;
  int32_t kv_head;
  int32_t i0, i1;  // queries [i0, i1) of the sequence's chunk
  int64_t work;    // keys the block reads times its queries (for balancing)
};

void validate(const PagedPrefillArgs& a) {
  const int32_t* indptr = a.q_indptr;
  KV_REQUIRE(indptr[0] == 0, "q_indptr[0]=", indptr[0], " must be 0");
  for (int32_t b = 0; b < a.batch; ++b) {
    const int64_t q_len = static_cast<int64_t>(indptr[b + 1]) - indptr[b];
    KV_REQUIRE(q_len >= 0, "q_indptr must be non-decreasing: q_indptr[", b + 1, "]=", indptr[b + 1], " < q_indptr[",
               b, "]=", indptr[b]);
    KV_REQUIRE(q_len <= a.max_q_len, "sequence ", b, ": q_len=", q_len, " (from q_indptr) exceeds max_q_len=",
               a.max_q_len);
    const int32_t kv_len = a.table.kv_lens[b];
    KV_REQUIRE(kv_len >= q_len && kv_len <= a.max_kv_len, "table.kv_lens[", b, "]=", kv_len, " must be in [q_len=",
               q_len, ", max_kv_len=", a.max_kv_len, "]");
    if (q_len == 0) continue;  // its pages are not read
    const int64_t pages = (static_cast<int64_t>(kv_len) + a.kv.page_tokens - 1) / a.kv.page_tokens;
    const int32_t heads = a.table.head_stride == 0 ? 1 : a.kv.num_kv_heads;
    for (int32_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < pages; ++j) {
        const int32_t page = a.table.page(b, h, j);
        if (page < 0 || page >= a.kv.num_pages)
          fail(KV_STATUS_INVALID_ARGUMENT, "table.pages[", b * a.table.seq_stride + h * a.table.head_stride + j,
               "]=", page, " (sequence ", b, ", KV head ", h, ", logical page ", j, ") is outside [0, kv.num_pages=",
               a.kv.num_pages, ")");
      }
  }
}

template <typename T>
void prefill_typed(const PagedPrefillArgs& a) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  const int32_t d = a.kv.head_dim;
  const int32_t hkv = a.kv.num_kv_heads;
  const int32_t g = a.num_q_heads / hkv;
  const int32_t P = a.kv.page_tokens;
  const int64_t q_row = static_cast<int64_t>(a.num_q_heads) * d;  // elements per query token

  std::vector<Task> tasks;
  for (int32_t b = 0; b < a.batch; ++b) {
    const int32_t q_len = a.q_indptr[b + 1] - a.q_indptr[b];
    const int32_t offset = a.table.kv_lens[b] - q_len;  // position of query 0
    for (int32_t h = 0; h < hkv; ++h)
      for (int32_t i0 = 0; i0 < q_len; i0 += kQueryBlock) {
        const int32_t i1 = std::min(q_len, i0 + kQueryBlock);
        tasks.push_back({b, h, i0, i1, static_cast<int64_t>(offset + i1) * (i1 - i0)});
      }
  }
  // Heaviest first, then alternate heavy and light so each contiguous range is balanced.
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& x, const Task& y) { return x.work > y.work; });
  const int64_t n = static_cast<int64_t>(tasks.size());
  const int64_t mean_work = n > 0 ? std::max<int64_t>(1, tasks[n / 2].work * g * d) : 1;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / mean_work);

  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch, qf(static_cast<size_t>(g) * d), of(static_cast<size_t>(g) * d), lf(g);
    std::vector<T> kbuf, vbuf;
    for (int64_t x = begin; x < end; ++x) {
      const Task& t = tasks[(x & 1) ? n - 1 - x / 2 : x / 2];
      const int32_t q_begin = a.q_indptr[t.b];
      const int32_t q_len = a.q_indptr[t.b + 1] - q_begin;
      const int32_t offset = a.table.kv_lens[t.b] - q_len;
      // Gather keys [0, offset + i1) of this KV head, page by page.
      const int64_t keys = static_cast<int64_t>(offset) + t.i1;
      kbuf.resize(static_cast<size_t>(keys) * d);
      vbuf.resize(static_cast<size_t>(keys) * d);
      for (int64_t j0 = 0; j0 < keys; j0 += P) {
        const int32_t page = a.table.page(t.b, t.kv_head, j0 / P);
        const int64_t count = std::min<int64_t>(P, keys - j0);
        for (int64_t r = 0; r < count; ++r) {
          const int64_t src = a.kv.offset(page, t.kv_head, static_cast<int32_t>(r));
          std::memcpy(&kbuf[(j0 + r) * d], static_cast<const T*>(a.kv.k) + src, sizeof(T) * d);
          std::memcpy(&vbuf[(j0 + r) * d], static_cast<const T*>(a.kv.v) + src, sizeof(T) * d);
        }
      }
      for (int32_t i = t.i0; i < t.i1; ++i) {
        // The group's query heads kv_head * g .. kv_head * g + g - 1 are contiguous in q, o and lse.
        const int64_t token = static_cast<int64_t>(q_begin) + i;
        const int64_t first = token * q_row + static_cast<int64_t>(t.kv_head) * g * d;
        const T* q = static_cast<const T*>(a.q) + first;
        for (int64_t e = 0; e < static_cast<int64_t>(g) * d; ++e) qf[e] = load_elem(q, e);
        attend_rows(qf.data(), kbuf.data(), vbuf.data(), d, g, d, a.sm_scale, 0, static_cast<int64_t>(offset) + i + 1,
                    of.data(), lf.data(), avx2, scratch);
        T* o = static_cast<T*>(a.o) + first;
        for (int64_t e = 0; e < static_cast<int64_t>(g) * d; ++e) store_elem(o, e, of[e]);
        if (a.lse)
          std::copy(lf.begin(), lf.end(), a.lse + token * a.num_q_heads + static_cast<int64_t>(t.kv_head) * g);
      }
    }
  });
}

}  // namespace

void paged_prefill(const PagedPrefillArgs& a) {
  if (a.batch == 0 || a.max_q_len == 0) return;
  validate(a);
  if (a.dtype == KV_DTYPE_BF16) prefill_typed<uint16_t>(a);
  else prefill_typed<float>(a);
}

}  // namespace kv::cpu
