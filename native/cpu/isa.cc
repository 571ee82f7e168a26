#include "cpu/isa.h"

#include <algorithm>
#include <atomic>

#include "core/error.h"

namespace kv::cpu {
namespace {
std::atomic<int> g_max_isa{KV_CPU_ISA_AVX2};
}  // namespace

kv_cpu_isa detected_isa() {
#if defined(__x86_64__) || defined(__i386__)
  static const kv_cpu_isa detected = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return KV_CPU_ISA_AVX2;
    return KV_CPU_ISA_SCALAR;
  }();
  return detected;
#else
  return KV_CPU_ISA_SCALAR;
#endif
}

kv_cpu_isa active_isa() {
  return static_cast<kv_cpu_isa>(std::min<int>(detected_isa(), g_max_isa.load(std::memory_order_relaxed)));
}

void set_max_isa(kv_cpu_isa isa) {
  if (isa != KV_CPU_ISA_SCALAR && isa != KV_CPU_ISA_AVX2)
    fail(KV_STATUS_INVALID_ARGUMENT, "isa=", static_cast<int>(isa), " is not a kv_cpu_isa value");
  if (isa > detected_isa())
    fail(KV_STATUS_UNSUPPORTED, "isa ", isa_name(isa), " is not supported by this CPU (best: ",
         isa_name(detected_isa()), ")");
  g_max_isa.store(isa, std::memory_order_relaxed);
}

const char* isa_name(kv_cpu_isa isa) {
  switch (isa) {
    case KV_CPU_ISA_SCALAR: return "scalar";
    case KV_CPU_ISA_AVX2: return "avx2";
  }
  return "unknown";
}

}  // namespace kv::cpu
