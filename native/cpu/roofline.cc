// CPU ceilings: host memory read bandwidth (a parallel sum) and copy bandwidth (parallel
// memcpy, bytes read + written). Host<->device transfers and GEMM do not apply (0).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float sum_avx2(const float* p, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
  }
  float s = hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += p[i];
  return s;
}
#endif

float sum_scalar(const float* p, int64_t n) {
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += p[i + j];
  for (; i < n; ++i) s[0] += p[i];
  return s[0] + s[1] + s[2] + s[3];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

template <typename F>
double median_seconds(int32_t reps, F&& f) {
  f();  // warm-up: page faults and the thread pool stay out of the figures
  std::vector<double> t;
  for (int32_t r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t);
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

void roofline_probe(uint64_t buffer_bytes, int32_t reps, kv_roofline* out) {
  const int64_t n = static_cast<int64_t>(buffer_bytes / sizeof(float)) / 64 * 64;
  const uint64_t bytes = static_cast<uint64_t>(n) * sizeof(float);
  std::unique_ptr<float, FreeDeleter> a(static_cast<float*>(std::aligned_alloc(64, bytes)));
  std::unique_ptr<float, FreeDeleter> b(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!a || !b) fail(KV_STATUS_OUT_OF_MEMORY, "roofline buffers of ", bytes, " bytes");
  // Every page distinct: virtual machines merge identical pages (KSM), and a periodic fill made
  // reads hit one cached physical page, measuring 2-3x the real DRAM bandwidth.
  parallel_for(n, 1 << 16, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      uint64_t z = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;  // splitmix64 finalizer
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      a.get()[i] = static_cast<float>(static_cast<uint32_t>(z ^ (z >> 31)) >> 8) * (1.0f / 16777216.0f);
    }
  });
  std::memcpy(b.get(), a.get(), bytes);  // touch every page of the copy target too
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  const int32_t threads = thread_count();
  std::vector<float> partial(static_cast<size_t>(threads) * 16);  // one cache line per thread
  volatile float sink = 0.f;
  double t_read = median_seconds(reps, [&] {
    parallel_for(threads, 1, [&](int64_t tb, int64_t te) {
      for (int64_t t = tb; t < te; ++t) {
        int64_t s = n * t / threads, e = n * (t + 1) / threads;
#if defined(__x86_64__)
        partial[t * 16] = avx2 ? sum_avx2(a.get() + s, e - s) : sum_scalar(a.get() + s, e - s);
#else
        partial[t * 16] = sum_scalar(a.get() + s, e - s);
#endif
      }
    });
    float total = 0.f;
    for (int32_t t = 0; t < threads; ++t) total += partial[t * 16];
    sink = sink + total;
  });
  double t_copy = median_seconds(reps, [&] {
    parallel_for(threads, 1, [&](int64_t tb, int64_t te) {
      for (int64_t t = tb; t < te; ++t) {
        int64_t s = n * t / threads, e = n * (t + 1) / threads;
        std::memcpy(b.get() + s, a.get() + s, static_cast<size_t>(e - s) * sizeof(float));
      }
    });
  });
  (void)sink;
  *out = kv_roofline{};
  out->read_bytes_per_s = static_cast<double>(bytes) / t_read;
  out->copy_bytes_per_s = 2.0 * static_cast<double>(bytes) / t_copy;
  out->buffer_bytes = bytes;
  out->repetitions = reps;
}

uint64_t host_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:") return kb * 1024;
  return 0;
}

const char* host_cpu_name() {
  static const std::string name = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) == 0) {
        auto colon = line.find(':');
        if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
      }
    }
    return std::string("host CPU");
  }();
  return name.c_str();
}

}  // namespace kv::cpu
