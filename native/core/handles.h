// The structs behind the ABI's opaque handles.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/op_args.h"
#include "kvasir/kvasir.h"

namespace kv::cuda {
struct Stream;
}

struct kv_buffer {
  kv_backend backend;
  int32_t device;
  kv_mem_tier tier;
  uint64_t size_bytes;
  void* data;
};

struct kv_stream {
  kv_backend backend;
  int32_t device;
  kv::cuda::Stream* cuda = nullptr;               // CUDA streams only
  kv::DeviceErrorRecord* error_record = nullptr;  // CUDA streams only (pinned, mapped)
};

struct kv_event {
  kv_backend backend;
  int32_t device;
  void* cuda = nullptr;  // cudaEvent_t
  bool recorded = false;
  std::chrono::steady_clock::time_point host_time{};  // CPU events
};

namespace kv {
// A live allocation made through mem_allocate.
struct Allocation {
  uintptr_t begin, end;
  kv_backend backend;
  int32_t device;
  kv_mem_tier tier;
};
// Finds the live allocation containing ptr; false for memory the library did not allocate.
bool find_allocation(const void* ptr, Allocation* out);

// Allocation through the tier counters; every native allocation of the library goes here.
void* mem_allocate(kv_backend backend, int32_t device, kv_mem_tier tier, uint64_t bytes);
void mem_release(kv_backend backend, int32_t device, kv_mem_tier tier, void* ptr, uint64_t bytes) noexcept;

// Validates a handle argument and returns it.
kv_stream& require_stream(kv_stream_t stream, const char* name = "stream");
}  // namespace kv
