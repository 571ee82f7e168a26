// Backends and devices: what was compiled in, what is present, and their properties.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.h"
#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#ifdef KV_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace kv {

void check_device(kv_backend backend, int32_t device) {
  if (backend == KV_BACKEND_CPU) {
    KV_REQUIRE(device == 0, "device=", device, ": the CPU backend has one device, 0");
    return;
  }
  if (backend != KV_BACKEND_CUDA) fail(KV_STATUS_INVALID_ARGUMENT, "backend=", static_cast<int>(backend), " is not a kv_backend value");
#ifdef KV_WITH_CUDA
  std::string reason;
  int32_t count = cuda::device_count(&reason);
  if (count == 0) fail(KV_STATUS_NO_DEVICE, "no CUDA device: ", reason);
  if (device < 0 || device >= count)
    fail(KV_STATUS_NO_DEVICE, "device=", device, " is outside [0, ", count, ") CUDA devices");
#else
  (void)device;
  fail(KV_STATUS_NO_DEVICE, "this libkvasir was built without CUDA");
#endif
}

}  // namespace kv

extern "C" {

int32_t kv_abi_version(void) { return KV_ABI_VERSION; }

const char* kv_build_info(void) {
  static const std::string info = [] {
    std::string s = "kvasir " KV_VERSION_STRING " (C++17; cpu ";
    s += kv::cpu::isa_name(kv::cpu::detected_isa());
#ifdef KV_WITH_CUDA
    int32_t rt = kv::cuda::runtime_version();
    char buf[64];
    std::snprintf(buf, sizeof buf, "; cuda runtime %d.%d static; archs ", rt / 1000, (rt % 1000) / 10);
    s += buf;
    s += KV_CUDA_ARCHS;
#else
    s += "; built without CUDA";
#endif
    s += ")";
    return s;
  }();
  return info.c_str();
}

int32_t kv_backend_compiled(kv_backend backend) {
  if (backend == KV_BACKEND_CPU) return 1;
#ifdef KV_WITH_CUDA
  if (backend == KV_BACKEND_CUDA) return 1;
#endif
  return 0;
}

kv_status kv_device_count(kv_backend backend, int32_t* out_count) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out_count);
  *out_count = 0;
  if (backend == KV_BACKEND_CPU) {
    *out_count = 1;
  } else if (backend == KV_BACKEND_CUDA) {
#ifdef KV_WITH_CUDA
    std::string reason;
    *out_count = kv::cuda::device_count(&reason);
    if (*out_count == 0) kv::fail(KV_STATUS_NO_DEVICE, "no CUDA device: ", reason);
#else
    kv::fail(KV_STATUS_NO_DEVICE, "this libkvasir was built without CUDA");
#endif
  } else {
    kv::fail(KV_STATUS_INVALID_ARGUMENT, "backend=", static_cast<int>(backend), " is not a kv_backend value");
  }
  KV_API_END
}

kv_status kv_device_get_props(kv_backend backend, int32_t ordinal, kv_device_props* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  kv::check_device(backend, ordinal);
  std::memset(out, 0, sizeof *out);
  out->backend = backend;
  out->ordinal = ordinal;
  if (backend == KV_BACKEND_CPU) {
    std::snprintf(out->name, sizeof out->name, "%s", kv::cpu::host_cpu_name());
    std::snprintf(out->arch, sizeof out->arch, "%s", kv::cpu::isa_name(kv::cpu::active_isa()));
    out->total_memory_bytes = kv::cpu::host_memory_bytes();
    out->compute_units = kv::cpu::thread_count();
    out->pci_bus_id = -1;
  } else {
#ifdef KV_WITH_CUDA
    kv::cuda::device_props(ordinal, out);
#endif
  }
  KV_API_END
}

kv_cpu_isa kv_cpu_isa_active(void) { return kv::cpu::active_isa(); }

kv_status kv_cpu_isa_set_max(kv_cpu_isa isa) {
  KV_API_BEGIN
  kv::cpu::set_max_isa(isa);
  KV_API_END
}

}  // extern "C"
