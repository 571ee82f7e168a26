// Test support over the public C ABI only: seeded random inputs, buffers with canary guards
// on any backend, host<->backend transfers, and a bf16 conversion written independently of
// the library's.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kvasir/kvasir.h"

namespace kvt {

// The run's base seed: KVASIR_TEST_SEED when set, otherwise fresh from std::random_device.
// Printed once so that a failure can be replayed.
uint64_t base_seed();

// A deterministic seed per test, derived from the base seed and a name.
uint64_t seed_for(const std::string& name);

// bf16 by truncation of the low mantissa bits with round to nearest even (independent copy).
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return 0x7fc0;
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Where a test runs: a backend plus, on the CPU, the SIMD level cap.
struct Target {
  kv_backend backend;
  kv_cpu_isa max_isa;  // CPU only
  std::string name() const;
};
std::vector<Target> all_targets();
// Empty when the target can run here; otherwise why not (for GTEST_SKIP).
std::string unavailable_reason(const Target& t);

// Throws std::runtime_error with the library's message when status is not OK.
void check(kv_status status, const char* what);
#define KVT_CHECK(call) ::kvt::check((call), #call)

// RAII stream on a target; applies the target's CPU ISA cap for its lifetime.
class StreamHolder {
 public:
  explicit StreamHolder(const Target& t);
  ~StreamHolder();
  StreamHolder(const StreamHolder&) = delete;
  StreamHolder& operator=(const StreamHolder&) = delete;
  kv_stream_t get() const { return stream_; }
  kv_backend backend() const { return backend_; }

 private:
  kv_stream_t stream_ = nullptr;
  kv_backend backend_;
};

// A buffer of `bytes` on a backend tier with kGuardBytes of canary on each side. data() is
// 256-byte aligned. Contents travel through the stream for device tiers.
class GuardedBuffer {
 public:
  static constexpr uint64_t kGuardBytes = 256;
  static constexpr unsigned char kCanary = 0xA5;

  GuardedBuffer(kv_stream_t stream, kv_backend backend, kv_mem_tier tier, uint64_t bytes);
  ~GuardedBuffer();
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;

  void* data() const { return static_cast<unsigned char*>(kv_buffer_data(buffer_)) + kGuardBytes; }
  uint64_t bytes() const { return bytes_; }

  void upload(const void* host, uint64_t bytes, uint64_t offset = 0);
  void download(void* host, uint64_t bytes, uint64_t offset = 0) const;
  // Fills the payload with a byte (0xFF poisons f32 and bf16 alike: every element is NaN).
  void fill(unsigned char value);
  // True when both guards still hold the canary.
  bool guards_intact() const;

  template <typename T>
  void upload(const std::vector<T>& v) { upload(v.data(), v.size() * sizeof(T)); }
  template <typename T>
  std::vector<T> download_all() const {
    std::vector<T> v(bytes_ / sizeof(T));
    download(v.data(), v.size() * sizeof(T));
    return v;
  }

 private:
  kv_stream_t stream_;
  kv_buffer_t buffer_ = nullptr;
  uint64_t bytes_;
};

// Values as the kernels see them: fp32, or bf16 rounded (the reference uses the rounded values).
struct TypedData {
  kv_dtype dtype;
  std::vector<float> values;  // exactly representable in dtype
  std::vector<unsigned char> raw() const;
  static TypedData from_raw(kv_dtype dtype, const std::vector<unsigned char>& raw);
};
TypedData random_typed(kv_dtype dtype, size_t n, std::mt19937_64& rng, float lo, float hi);

const char* dtype_name(kv_dtype dtype);
inline size_t dtype_bytes(kv_dtype dtype) { return dtype == KV_DTYPE_BF16 ? 2 : 4; }

}  // namespace kvt
