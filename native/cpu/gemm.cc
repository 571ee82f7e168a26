#include "cpu/gemm.h"

#include <algorithm>

#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

constexpr int64_t kTileT = 32;  // tokens per tile: A tile stays in cache while W streams by
constexpr int64_t kRowsN = 4;   // weight rows per micro-kernel step

// Scalar: k ascending, one accumulator per output.
template <typename W>
float dot_scalar_fixed(const float* x, const W* w, int64_t k) {
  float s = 0.f;
  for (int64_t i = 0; i < k; ++i) s += x[i] * load_elem(w, i);
  return s;
}

#if defined(__x86_64__)
// Eight lane sums over k (lane j takes k = j mod 8), combined as ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7))
// by hsum_avx2, then the k % 8 tail ascending. Shared by the single-row and tiled paths.
template <typename W>
__attribute__((target("avx2,fma"))) inline float finish_avx2(__m256 acc, const float* x, const W* w, int64_t k) {
  float s = hsum_avx2(acc);
  for (int64_t i = k / 8 * 8; i < k; ++i) s += x[i] * load_elem(w, i);
  return s;
}

template <typename W>
__attribute__((target("avx2,fma"))) float dot_avx2_fixed(const float* x, const W* w, int64_t k) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i + 8 <= k; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8_avx2(w + i), acc);
  return finish_avx2(acc, x, w, k);
}

// kRowsN weight rows against one or two token rows: each weight vector is loaded once and
// used for both tokens. Per output the arithmetic is exactly dot_avx2_fixed's.
template <typename W, int kTokens>
__attribute__((target("avx2,fma"))) void micro_avx2(const float* const* x, const W* const* w, int64_t k,
                                                    float* const* out) {
  __m256 acc[kTokens][kRowsN];
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < kRowsN; ++r) acc[t][r] = _mm256_setzero_ps();
  for (int64_t i = 0; i + 8 <= k; i += 8) {
    __m256 wv[kRowsN];
    for (int r = 0; r < kRowsN; ++r) wv[r] = load8_avx2(w[r] + i);
    for (int t = 0; t < kTokens; ++t) {
      const __m256 xv = _mm256_loadu_ps(x[t] + i);
      for (int r = 0; r < kRowsN; ++r) acc[t][r] = _mm256_fmadd_ps(xv, wv[r], acc[t][r]);
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < kRowsN; ++r) out[t][r] = finish_avx2(acc[t][r], x[t], w[r], k);
}
#endif

template <typename W>
float dot_fixed(const float* x, const W* w, int64_t k, bool avx2) {
#if defined(__x86_64__)
  if (avx2) return dot_avx2_fixed(x, w, k);
#endif
  (void)avx2;
  return dot_scalar_fixed(x, w, k);
}

template <typename W>
void matmul_typed(const float* a, int64_t t_total, int64_t k, const W* w, int64_t n_total, float* c) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  // Threads split the weight rows; each streams its rows once per tile of tokens.
  const int64_t blocks = (n_total + kRowsN - 1) / kRowsN;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t t0 = 0; t0 < t_total; t0 += kTileT) {
      const int64_t t1 = std::min(t_total, t0 + kTileT);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n0 = b * kRowsN;
        const int64_t rows = std::min(kRowsN, n_total - n0);
#if defined(__x86_64__)
        if (avx2 && rows == kRowsN) {
          const W* wr[kRowsN];
          for (int r = 0; r < kRowsN; ++r) wr[r] = w + (n0 + r) * k;
          int64_t t = t0;
          for (; t + 2 <= t1; t += 2) {
            const float* xr[2] = {a + t * k, a + (t + 1) * k};
            float* outr[2] = {c + t * n_total + n0, c + (t + 1) * n_total + n0};
            micro_avx2<W, 2>(xr, wr, k, outr);
          }
          for (; t < t1; ++t) {
            const float* xr[1] = {a + t * k};
            float* outr[1] = {c + t * n_total + n0};
            micro_avx2<W, 1>(xr, wr, k, outr);
          }
          continue;
        }
#endif
        for (int64_t t = t0; t < t1; ++t)
          for (int64_t r = 0; r < rows; ++r) c[t * n_total + n0 + r] = dot_fixed(a + t * k, w + (n0 + r) * k, k, avx2);
      }
    }
  });
}

}  // namespace

void matmul_wt(const float* a, int64_t t, int64_t k, const void* w, kv_dtype w_dtype, int64_t n, float* c) {
  if (w_dtype == KV_DTYPE_BF16) matmul_typed(a, t, k, static_cast<const uint16_t*>(w), n, c);
  else matmul_typed(a, t, k, static_cast<const float*>(w), n, c);
}

float dot_row(const float* x, const void* w_row, kv_dtype w_dtype, int64_t k) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  if (w_dtype == KV_DTYPE_BF16) return dot_fixed(x, static_cast<const uint16_t*>(w_row), k, avx2);
  return dot_fixed(x, static_cast<const float*>(w_row), k, avx2);
}

}  // namespace kv::cpu
