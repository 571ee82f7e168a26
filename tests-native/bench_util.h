// What the decode perf runners share: percentiles, JSON numbers, device buffers, random fills,
// event timing of back-to-back runs, bf16 read-back.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace kvt {

inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

// A JSON number (null when not finite).
inline std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", x);
  return buf;
}

// Device memory of a backend (at least 256 bytes), freed with the object.
struct Buffer {
  kv_buffer_t handle = nullptr;
  Buffer(kv_backend be, uint64_t bytes) { KVT_CHECK(kv_buffer_init(be, 0, KV_MEM_DEVICE, std::max<uint64_t>(bytes, 256), &handle)); }
  ~Buffer() { kv_buffer_free(handle); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return kv_buffer_data(handle); }
};

// Fills `bytes` of stream memory by repeating a random host block (bf16 values in [-1, 1]).
inline void fill_random(kv_stream_t st, void* dst, uint64_t bytes, std::mt19937_64& rng) {
  static std::vector<uint16_t> block;
  if (block.empty()) {
    block.resize(size_t{16} << 20);  // 32 MiB
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (auto& h : block) h = to_bf16(dist(rng));
  }
  const uint64_t block_bytes = block.size() * 2;
  for (uint64_t off = 0; off < bytes; off += block_bytes)
    KVT_CHECK(kv_memcpy_async(st, static_cast<char*>(dst) + off, block.data(), std::min(block_bytes, bytes - off)));
  KVT_CHECK(kv_stream_synchronize(st));
}

// Per-run milliseconds of `run`, one sample per batch of back-to-back runs (about 1 ms each),
// `reps` samples or fewer once `max_seconds` have passed (at least 5).
template <typename Run>
std::vector<double> time_runs(kv_stream_t st, int reps, double max_seconds, Run run) {
  kv_event_t start, stop;
  KVT_CHECK(kv_event_init(st, &start));
  KVT_CHECK(kv_event_init(st, &stop));
  auto sample = [&](int runs) {
    KVT_CHECK(kv_event_record(start, st));
    for (int i = 0; i < runs; ++i) run();
    KVT_CHECK(kv_event_record(stop, st));
    KVT_CHECK(kv_event_synchronize(stop));
    float ms = 0;
    KVT_CHECK(kv_event_elapsed_ms(start, stop, &ms));
    return static_cast<double>(ms) / runs;
  };
  run();  // warm-up
  const double single = sample(1);
  const int runs = static_cast<int>(std::min(100.0, std::max(1.0, std::ceil(1.0 / std::max(single, 1e-3)))));
  std::vector<double> samples;
  const auto wall0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    samples.push_back(sample(runs));
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    if (r >= 4 && wall > max_seconds) break;
  }
  kv_event_free(start);
  kv_event_free(stop);
  return samples;
}

inline std::vector<float> download_bf16(kv_stream_t st, const void* src, size_t n) {
  std::vector<uint16_t> raw(n);
  KVT_CHECK(kv_stream_synchronize(st));
  KVT_CHECK(kv_memcpy_async(st, raw.data(), src, n * 2));
  KVT_CHECK(kv_stream_synchronize(st));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = from_bf16(raw[i]);
  return out;
}

}  // namespace kvt
