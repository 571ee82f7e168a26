#include "test_util.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>

namespace kvt {

uint64_t base_seed() {
  static const uint64_t seed = [] {
    uint64_t s;
    if (const char* env = std::getenv("KVASIR_TEST_SEED")) {
      s = std::strtoull(env, nullptr, 0);
    } else {
      std::random_device rd;
      s = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    std::printf("[kvasir] test seed %llu (replay with KVASIR_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
    std::fflush(stdout);
    return s;
  }();
  return seed;
}

uint64_t seed_for(const std::string& name) {
  // FNV-1a over the name, mixed with the base seed.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h ^ (base_seed() * 0x9E3779B97F4A7C15ull);
}

std::string Target::name() const {
  if (backend == KV_BACKEND_CUDA) return "cuda";
  return max_isa == KV_CPU_ISA_AVX2 ? "cpu_avx2" : "cpu_scalar";
}

std::vector<Target> all_targets() {
  return {{KV_BACKEND_CPU, KV_CPU_ISA_SCALAR}, {KV_BACKEND_CPU, KV_CPU_ISA_AVX2}, {KV_BACKEND_CUDA, KV_CPU_ISA_AVX2}};
}

std::string unavailable_reason(const Target& t) {
  if (t.backend == KV_BACKEND_CPU) {
    // The cap starts at the best level, so raising it to AVX2 fails only on a CPU without it.
    if (t.max_isa == KV_CPU_ISA_AVX2 && kv_cpu_isa_set_max(KV_CPU_ISA_AVX2) != KV_STATUS_OK)
      return "CPU lacks AVX2+FMA";
    return "";
  }
  if (!kv_backend_compiled(KV_BACKEND_CUDA)) return "libkvasir built without CUDA";
  int32_t count = 0;
  if (kv_device_count(KV_BACKEND_CUDA, &count) != KV_STATUS_OK || count == 0)
    return kv_last_error();
  return "";
}

void check(kv_status status, const char* what) {
  if (status != KV_STATUS_OK)
    throw std::runtime_error(std::string(what) + " -> " + kv_status_to_string(status) + ": " + kv_last_error());
}

StreamHolder::StreamHolder(const Target& t) : backend_(t.backend) {
  if (t.backend == KV_BACKEND_CPU) KVT_CHECK(kv_cpu_isa_set_max(t.max_isa));
  KVT_CHECK(kv_stream_init(t.backend, 0, &stream_));
}

StreamHolder::~StreamHolder() {
  kv_stream_free(stream_);
  // Back to the library's default, the best level the CPU has (fails harmlessly without AVX2).
  (void)kv_cpu_isa_set_max(KV_CPU_ISA_AVX2);
}

GuardedBuffer::GuardedBuffer(kv_stream_t stream, kv_backend backend, kv_mem_tier tier, uint64_t bytes)
    : stream_(stream), bytes_(bytes) {
  const uint64_t total = bytes + 2 * kGuardBytes;
  KVT_CHECK(kv_buffer_init(backend, 0, tier, total, &buffer_));
  std::vector<unsigned char> canary(total, kCanary);
  KVT_CHECK(kv_memcpy_async(stream_, kv_buffer_data(buffer_), canary.data(), total));
  KVT_CHECK(kv_stream_synchronize(stream_));
}

GuardedBuffer::~GuardedBuffer() { kv_buffer_free(buffer_); }

void GuardedBuffer::upload(const void* host, uint64_t bytes, uint64_t offset) {
  if (offset + bytes > bytes_) throw std::out_of_range("upload past the end of a GuardedBuffer");
  KVT_CHECK(kv_memcpy_async(stream_, static_cast<unsigned char*>(data()) + offset, host, bytes));
  KVT_CHECK(kv_stream_synchronize(stream_));
}

void GuardedBuffer::download(void* host, uint64_t bytes, uint64_t offset) const {
  if (offset + bytes > bytes_) throw std::out_of_range("download past the end of a GuardedBuffer");
  KVT_CHECK(kv_stream_synchronize(stream_));
  KVT_CHECK(kv_memcpy_async(stream_, host, static_cast<const unsigned char*>(data()) + offset, bytes));
  KVT_CHECK(kv_stream_synchronize(stream_));
}

void GuardedBuffer::fill(unsigned char value) {
  std::vector<unsigned char> v(bytes_, value);
  upload(v.data(), v.size());
}

bool GuardedBuffer::guards_intact() const {
  std::vector<unsigned char> all(bytes_ + 2 * kGuardBytes);
  KVT_CHECK(kv_stream_synchronize(stream_));
  KVT_CHECK(kv_memcpy_async(stream_, all.data(), kv_buffer_data(buffer_), all.size()));
  KVT_CHECK(kv_stream_synchronize(stream_));
  for (uint64_t i = 0; i < kGuardBytes; ++i)
    if (all[i] != kCanary || all[kGuardBytes + bytes_ + i] != kCanary) return false;
  return true;
}

std::vector<unsigned char> TypedData::raw() const {
  std::vector<unsigned char> out(values.size() * dtype_bytes(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == KV_DTYPE_BF16) {
      uint16_t h = to_bf16(values[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
    }
  }
  return out;
}

TypedData TypedData::from_raw(kv_dtype dtype, const std::vector<unsigned char>& raw) {
  TypedData t{dtype, std::vector<float>(raw.size() / dtype_bytes(dtype))};
  for (size_t i = 0; i < t.values.size(); ++i) {
    if (dtype == KV_DTYPE_BF16) {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      t.values[i] = from_bf16(h);
    } else {
      std::memcpy(&t.values[i], raw.data() + 4 * i, 4);
    }
  }
  return t;
}

TypedData random_typed(kv_dtype dtype, size_t n, std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  TypedData t{dtype, std::vector<float>(n)};
  for (auto& x : t.values) {
    float v = dist(rng);
    x = dtype == KV_DTYPE_BF16 ? from_bf16(to_bf16(v)) : v;
  }
  return t;
}

const char* dtype_name(kv_dtype dtype) { return dtype == KV_DTYPE_BF16 ? "bf16" : "f32"; }

}  // namespace kvt
