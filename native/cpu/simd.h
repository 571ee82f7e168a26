// Element access and the two vector primitives CPU kernels are built from (dot, axpy), each
// in a scalar and an AVX2+FMA body. AVX2 bodies carry target attributes, so the library is
// built for the baseline ISA and callers pick a body at run time (see isa.h).
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/bf16.h"

namespace kv::cpu {

inline float load_elem(const float* p, int64_t i) { return p[i]; }
inline float load_elem(const uint16_t* p, int64_t i) { return bf16_to_float(p[i]); }
inline void store_elem(float* p, int64_t i, float x) { p[i] = x; }
inline void store_elem(uint16_t* p, int64_t i, float x) { p[i] = float_to_bf16(x); }

template <typename T>
inline float dot_scalar(const float* a, const T* b, int32_t d) {
  float s = 0.f;
  for (int32_t j = 0; j < d; ++j) s += a[j] * load_elem(b, j);
  return s;
}

template <typename T>
inline void axpy_scalar(float* acc, float w, const T* x, int32_t d) {
  for (int32_t j = 0; j < d; ++j) acc[j] += w * load_elem(x, j);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline __m256 load8_avx2(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma"))) inline __m256 load8_avx2(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma"))) inline float hsum_avx2(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

template <typename T>
__attribute__((target("avx2,fma"))) inline float dot_avx2(const float* a, const T* b, int32_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int32_t j = 0;
  for (; j + 16 <= d; j += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), load8_avx2(b + j), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), load8_avx2(b + j + 8), s1);
  }
  for (; j + 8 <= d; j += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), load8_avx2(b + j), s0);
  float s = hsum_avx2(_mm256_add_ps(s0, s1));
  for (; j < d; ++j) s += a[j] * load_elem(b, j);
  return s;
}

template <typename T>
__attribute__((target("avx2,fma"))) inline void axpy_avx2(float* acc, float w, const T* x, int32_t d) {
  __m256 wv = _mm256_set1_ps(w);
  int32_t j = 0;
  for (; j + 8 <= d; j += 8)
    _mm256_storeu_ps(acc + j, _mm256_fmadd_ps(wv, load8_avx2(x + j), _mm256_loadu_ps(acc + j)));
  for (; j < d; ++j) acc[j] += w * load_elem(x, j);
}
#endif

template <typename T>
inline float dot(const float* a, const T* b, int32_t d, bool avx2) {
#if defined(__x86_64__)
  if (avx2) return dot_avx2(a, b, d);
#endif
  (void)avx2;
  return dot_scalar(a, b, d);
}

template <typename T>
inline void axpy(float* acc, float w, const T* x, int32_t d, bool avx2) {
#if defined(__x86_64__)
  if (avx2) {
    axpy_avx2(acc, w, x, d);
    return;
  }
#endif
  (void)avx2;
  axpy_scalar(acc, w, x, d);
}

}  // namespace kv::cpu
