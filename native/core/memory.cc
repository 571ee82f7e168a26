// Buffers on three tiers, with live-allocation counters per tier. The counters cover every
// allocation the library makes (buffers and internal records), so tests can assert that
// everything returns to zero.
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <shared_mutex>

#include "core/error.h"
#include "core/handles.h"
#ifdef KV_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace kv {
namespace {

constexpr uint64_t kHostAlignment = 256;

struct TierCounters {
  std::atomic<int64_t> count{0};
  std::atomic<int64_t> bytes{0};
};
TierCounters g_counters[KV_MEM_TIER_COUNT];

bool valid_tier(int tier) { return tier >= 0 && tier < KV_MEM_TIER_COUNT; }

// Address ranges of live allocations, so that checking a pointer handed to a CUDA stream is a
// map lookup instead of a driver query (cudaPointerGetAttributes costs microseconds per call).
std::map<uintptr_t, Allocation> g_allocations;
std::shared_mutex g_allocations_mutex;

const char* tier_name(kv_mem_tier tier) {
  switch (tier) {
    case KV_MEM_DEVICE: return "device";
    case KV_MEM_PINNED_HOST: return "pinned host";
    case KV_MEM_HOST: return "host";
  }
  return "unknown";
}

void* host_alloc(uint64_t bytes) {
  uint64_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
  return std::aligned_alloc(kHostAlignment, rounded);
}

}  // namespace

void* mem_allocate(kv_backend backend, int32_t device, kv_mem_tier tier, uint64_t bytes) {
  void* p = nullptr;
  if (backend == KV_BACKEND_CPU || tier == KV_MEM_HOST) {
    p = host_alloc(bytes);
    if (!p) fail(KV_STATUS_OUT_OF_MEMORY, "could not allocate ", bytes, " bytes of ", tier_name(tier), " memory");
  } else {
#ifdef KV_WITH_CUDA
    p = cuda::alloc(tier, device, bytes);
#else
    fail(KV_STATUS_NO_DEVICE, "this libkvasir was built without CUDA");
#endif
  }
  g_counters[tier].count.fetch_add(1, std::memory_order_relaxed);
  g_counters[tier].bytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  try {
    std::unique_lock<std::shared_mutex> lock(g_allocations_mutex);
    const auto begin = reinterpret_cast<uintptr_t>(p);
    g_allocations[begin] = Allocation{begin, begin + bytes, backend, device, tier};
  } catch (...) {
    mem_release(backend, device, tier, p, bytes);
    throw;
  }
  return p;
}

void mem_release(kv_backend backend, int32_t device, kv_mem_tier tier, void* ptr, uint64_t bytes) noexcept {
  if (!ptr) return;
  {
    std::unique_lock<std::shared_mutex> lock(g_allocations_mutex);
    g_allocations.erase(reinterpret_cast<uintptr_t>(ptr));
  }
  if (backend == KV_BACKEND_CPU || tier == KV_MEM_HOST) {
    std::free(ptr);
  } else {
#ifdef KV_WITH_CUDA
    cuda::release(tier, device, ptr);
#else
    (void)device;
#endif
  }
  g_counters[tier].count.fetch_sub(1, std::memory_order_relaxed);
  g_counters[tier].bytes.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

bool find_allocation(const void* ptr, Allocation* out) {
  const auto address = reinterpret_cast<uintptr_t>(ptr);
  std::shared_lock<std::shared_mutex> lock(g_allocations_mutex);
  auto it = g_allocations.upper_bound(address);
  if (it == g_allocations.begin()) return false;
  --it;
  if (address >= it->second.end) return false;
  *out = it->second;
  return true;
}

void check_device(kv_backend backend, int32_t device);  // device.cc

}  // namespace kv

extern "C" {

kv_status kv_buffer_init(kv_backend backend, int32_t device, kv_mem_tier tier, uint64_t size_bytes,
                         kv_buffer_t* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  *out = nullptr;
  KV_REQUIRE(kv::valid_tier(tier), "tier=", static_cast<int>(tier), " is not a kv_mem_tier value");
  KV_REQUIRE(size_bytes > 0, "size_bytes must be > 0");
  kv::check_device(backend, device);
  auto* buffer = new kv_buffer{backend, device, tier, size_bytes, nullptr};
  try {
    buffer->data = kv::mem_allocate(backend, device, tier, size_bytes);
  } catch (...) {
    delete buffer;
    throw;
  }
  *out = buffer;
  KV_API_END
}

void kv_buffer_free(kv_buffer_t buffer) {
  if (!buffer) return;
  kv::mem_release(buffer->backend, buffer->device, buffer->tier, buffer->data, buffer->size_bytes);
  delete buffer;
}

void* kv_buffer_data(kv_buffer_t buffer) { return buffer ? buffer->data : nullptr; }
uint64_t kv_buffer_size_bytes(kv_buffer_t buffer) { return buffer ? buffer->size_bytes : 0; }
kv_mem_tier kv_buffer_tier(kv_buffer_t buffer) { return buffer ? buffer->tier : KV_MEM_HOST; }
kv_backend kv_buffer_backend(kv_buffer_t buffer) { return buffer ? buffer->backend : KV_BACKEND_CPU; }

kv_status kv_mem_live(kv_mem_tier tier, int64_t* out_count, int64_t* out_bytes) {
  KV_API_BEGIN
  KV_REQUIRE(kv::valid_tier(tier), "tier=", static_cast<int>(tier), " is not a kv_mem_tier value");
  if (out_count) *out_count = kv::g_counters[tier].count.load(std::memory_order_relaxed);
  if (out_bytes) *out_bytes = kv::g_counters[tier].bytes.load(std::memory_order_relaxed);
  KV_API_END
}

}  // extern "C"
