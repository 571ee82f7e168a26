// Causal prefill attention on the CPU. One task owns (sequence, KV head, query) and runs
// attend_rows (attention.cc) for the query's GQA group over keys [0, position], so every
// output depends only on its own query and keys: the result is the same for any thread count
// and any batching (the model runtime's CPU attention runs the same routine in the same order).
#include <algorithm>
#include <vector>

#include "cpu/attention.h"
#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

// Query i of task index x: queries are visited 0, n-1, 1, n-2, ... so that each contiguous
// range the pool hands a thread mixes short and long causal rows.
int64_t balanced_query(int64_t x, int64_t n) { return (x & 1) ? n - 1 - x / 2 : x / 2; }

template <typename T>
void prefill_typed(const AttentionPrefillArgs& a) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  const int32_t d = a.head_dim;
  const int32_t g = a.num_q_heads / a.num_kv_heads;
  const int64_t q_row = static_cast<int64_t>(a.num_q_heads) * d;   // elements per query token
  const int64_t kv_row = static_cast<int64_t>(a.num_kv_heads) * d;  // elements per key position
  const int64_t offset = a.kv_len - a.q_len;                       // position of query 0
  const int64_t tasks = static_cast<int64_t>(a.batch) * a.num_kv_heads * a.q_len;
  // About 64k multiply-adds per task at the least keeps the pool's overhead small.
  const int64_t work_per_task = std::max<int64_t>(1, static_cast<int64_t>(g) * d * (offset + a.q_len / 2 + 1));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / work_per_task);
  parallel_for(tasks, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch, qf(static_cast<size_t>(g) * d), of(static_cast<size_t>(g) * d), lf(g);
    for (int64_t x = begin; x < end; ++x) {
      const int64_t i = balanced_query(x % a.q_len, a.q_len);
      const int64_t rest = x / a.q_len;
      const int32_t kvh = static_cast<int32_t>(rest % a.num_kv_heads);
      const int64_t b = rest / a.num_kv_heads;
      // The group's query heads kvh * g .. kvh * g + g - 1 are contiguous in q, o and lse.
      const int64_t token = b * a.q_len + i;
      const int64_t first = token * q_row + static_cast<int64_t>(kvh) * g * d;
      const T* q = static_cast<const T*>(a.q) + first;
      for (int64_t e = 0; e < static_cast<int64_t>(g) * d; ++e) qf[e] = load_elem(q, e);
      const int64_t base = b * a.kv_len * kv_row + static_cast<int64_t>(kvh) * d;
      attend_rows(qf.data(), static_cast<const T*>(a.k) + base, static_cast<const T*>(a.v) + base, kv_row, g, d,
                  a.sm_scale, 0, offset + i + 1, of.data(), lf.data(), avx2, scratch);
      T* o = static_cast<T*>(a.o) + first;
      for (int64_t e = 0; e < static_cast<int64_t>(g) * d; ++e) store_elem(o, e, of[e]);
      if (a.lse) std::copy(lf.begin(), lf.end(), a.lse + token * a.num_q_heads + static_cast<int64_t>(kvh) * g);
    }
  });
}

}  // namespace

void attention_prefill(const AttentionPrefillArgs& a) {
  if (a.dtype == KV_DTYPE_BF16) prefill_typed<uint16_t>(a);
  else prefill_typed<float>(a);
}

}  // namespace kv::cpu
