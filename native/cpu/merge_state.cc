// Attention-state merge on the CPU. Per row: one pass over the lse values finds the max m,
// a second accumulates sum_i exp(lse_i - m) * o_i into an fp32 row buffer. Empty states
// (lse = -inf) contribute nothing and their o is never read.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

template <typename TIn, typename TOut>
void merge_rows(const MergeArgs& a, int64_t row_begin, int64_t row_end, bool avx2) {
  const int32_t d = a.head_dim;
  const int32_t n = a.in.count;
  std::vector<float> acc(static_cast<size_t>(d));
  TOut* out = static_cast<TOut*>(a.o_out);
  for (int64_t r = row_begin; r < row_end; ++r) {
    float m = -std::numeric_limits<float>::infinity();
    bool nan = false;
    for (int32_t i = 0; i < n; ++i) {
      float l = a.in.lse(i)[r];
      if (std::isnan(l)) nan = true;
      m = std::max(m, l);
    }
    TOut* o_row = out + r * d;
    if (nan || m == -std::numeric_limits<float>::infinity()) {
      // NaN in, NaN out: a broken state must never pass for a valid one.
      float fill = nan ? std::numeric_limits<float>::quiet_NaN() : 0.f;
      for (int32_t j = 0; j < d; ++j) store_elem(o_row, j, fill);
      if (a.lse_out) a.lse_out[r] = nan ? fill : m;
      continue;
    }
    std::fill(acc.begin(), acc.end(), 0.f);
    float sum = 0.f;
    for (int32_t i = 0; i < n; ++i) {
      float l = a.in.lse(i)[r];
      if (l == -std::numeric_limits<float>::infinity()) continue;
      float w = std::exp(l - m);
      sum += w;
      axpy(acc.data(), w, a.in.template o<TIn>(i) + r * d, d, avx2);
    }
    float inv = 1.f / sum;
    for (int32_t j = 0; j < d; ++j) store_elem(o_row, j, acc[j] * inv);
    if (a.lse_out) a.lse_out[r] = m + std::log(sum);
  }
}

template <typename TIn, typename TOut>
void merge_typed(const MergeArgs& a) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  // Rows are independent; a few KB of work per task keeps the pool busy without overhead.
  int64_t grain = std::max<int64_t>(1, 16384 / (static_cast<int64_t>(a.head_dim) * a.in.count));
  parallel_for(a.rows, grain, [&](int64_t b, int64_t e) { merge_rows<TIn, TOut>(a, b, e, avx2); });
}

}  // namespace

void merge_states(const MergeArgs& a) {
  const bool in_bf16 = a.in_dtype == KV_DTYPE_BF16, out_bf16 = a.out_dtype == KV_DTYPE_BF16;
  if (!in_bf16 && !out_bf16) merge_typed<float, float>(a);
  else if (!in_bf16 && out_bf16) merge_typed<float, uint16_t>(a);
  else if (in_bf16 && !out_bf16) merge_typed<uint16_t, float>(a);
  else merge_typed<uint16_t, uint16_t>(a);
}

void merge_split_states(const float* part_o, const float* part_lse, int64_t splits, int64_t rows, int32_t head_dim,
                        kv_dtype out_dtype, void* o, float* lse) {
  MergeArgs m;
  m.in.count = static_cast<int32_t>(splits);
  m.in.o_base = part_o;
  m.in.lse_base = part_lse;
  m.in.o_state_stride = rows * head_dim;
  m.in.lse_state_stride = rows;
  m.in_dtype = KV_DTYPE_F32;
  m.out_dtype = out_dtype;
  m.o_out = o;
  m.lse_out = lse;
  m.rows = rows;
  m.head_dim = head_dim;
  merge_states(m);
}

}  // namespace kv::cpu
