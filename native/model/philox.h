// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator, so the random number for (seed, request, position) is a pure
// function of those values, the same on every backend and under any batching.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define KV_PHILOX_FN __host__ __device__ __forceinline__
#else
#define KV_PHILOX_FN inline
#endif

namespace kv::philox {

struct U32x4 {
  uint32_t v[4];
};

KV_PHILOX_FN void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 on counter c with key k.
KV_PHILOX_FN U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c.v[0], &hi0, &lo0);
    mulhilo(kM1, c.v[2], &hi1, &lo1);
    c = U32x4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

// Uniform in [0, 1) with 24 random bits (exactly representable in fp32).
KV_PHILOX_FN float to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

// The uniform a sampler draws for (seed, request, position).
KV_PHILOX_FN float sample_uniform(uint64_t seed, uint64_t request, uint64_t position) {
  U32x4 c{{static_cast<uint32_t>(request), static_cast<uint32_t>(request >> 32), static_cast<uint32_t>(position),
           static_cast<uint32_t>(position >> 32)}};
  return to_unit_float(philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)).v[0]);
}

// A standard normal for element `index` of random stream `stream` (synthetic weights): Box-Muller
// over two uniforms of one Philox block. The same on every backend up to the last bit of log and
// cos.
KV_PHILOX_FN float normal(uint64_t seed, uint64_t stream, uint64_t index) {
  U32x4 c{{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), static_cast<uint32_t>(stream),
           0x6b766d72u}};
  const U32x4 r = philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const float u1 = (static_cast<float>(r.v[0] >> 8) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = to_unit_float(r.v[1]);
#if defined(__CUDA_ARCH__)
  return sqrtf(-2.f * logf(u1)) * cosf(6.2831853071795864f * u2);
#else
  return std::sqrt(-2.f * std::log(u1)) * std::cos(6.2831853071795864f * u2);
#endif
}

}  // namespace kv::philox
