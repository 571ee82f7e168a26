#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/simd.h"

namespace kv::cpu {
namespace {
constexpr int64_t kBlockTokens = 64;
}  // namespace

template <typename T>
void attend_rows(const float* q, const T* k, const T* v, int64_t row_stride, int32_t g, int32_t d, float sm_scale,
                 int64_t t_begin, int64_t t_end, float* o_out, float* lse_out, bool avx2, std::vector<float>& scratch) {
  scratch.assign(static_cast<size_t>(g) * d + static_cast<size_t>(g) * kBlockTokens, 0.f);
  float* acc = scratch.data();                     // [g][d] unnormalized output
  float* s = acc + static_cast<size_t>(g) * d;     // [g][kBlockTokens] scores, then weights
  std::vector<float> m(g, -std::numeric_limits<float>::infinity()), l(g, 0.f);

  for (int64_t t0 = t_begin; t0 < t_end; t0 += kBlockTokens) {
    const int64_t nt = std::min(kBlockTokens, t_end - t0);
    for (int64_t t = 0; t < nt; ++t) {
      const T* kt = k + (t0 + t) * row_stride;
      for (int32_t h = 0; h < g; ++h) s[h * kBlockTokens + t] = sm_scale * dot(q + h * d, kt, d, avx2);
    }
    for (int32_t h = 0; h < g; ++h) {
      float* sh = s + h * kBlockTokens;
      const float m_new = std::max(m[h], *std::max_element(sh, sh + nt));
      const float rescale = std::exp(m[h] - m_new);  // exp(-inf) = 0 on the first block
      float* acc_h = acc + static_cast<int64_t>(h) * d;
      if (rescale != 1.f)
        for (int32_t j = 0; j < d; ++j) acc_h[j] *= rescale;
      l[h] *= rescale;
      for (int64_t t = 0; t < nt; ++t) {
        sh[t] = std::exp(sh[t] - m_new);
        l[h] += sh[t];
      }
      m[h] = m_new;
    }
    for (int64_t t = 0; t < nt; ++t) {
      const T* vt = v + (t0 + t) * row_stride;
      for (int32_t h = 0; h < g; ++h) axpy(acc + static_cast<int64_t>(h) * d, s[h * kBlockTokens + t], vt, d, avx2);
    }
  }
  for (int32_t h = 0; h < g; ++h) {
    float* out = o_out + static_cast<int64_t>(h) * d;
    if (l[h] == 0.f) {  // no tokens: the empty state
      std::fill(out, out + d, 0.f);
      if (lse_out) lse_out[h] = -std::numeric_limits<float>::infinity();
      continue;
    }
    const float inv = 1.f / l[h];
    for (int32_t j = 0; j < d; ++j) out[j] = acc[static_cast<int64_t>(h) * d + j] * inv;
    if (lse_out) lse_out[h] = m[h] + std::log(l[h]);
  }
}

template void attend_rows<float>(const float*, const float*, const float*, int64_t, int32_t, int32_t, float, int64_t,
                                 int64_t, float*, float*, bool, std::vector<float>&);
template void attend_rows<uint16_t>(const float*, const uint16_t*, const uint16_t*, int64_t, int32_t, int32_t, float,
                                    int64_t, int64_t, float*, float*, bool, std::vector<float>&);

}  // namespace kv::cpu
