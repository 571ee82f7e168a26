// Run-time choice of the CPU SIMD level. Kernels are compiled for every level (the AVX2
// bodies through function target attributes, never -march flags), and dispatch on active_isa().
#pragma once

#include "kvasir/kvasir.h"

namespace kv::cpu {

// Best level this CPU supports.
kv_cpu_isa detected_isa();
// Level kernels use now: min(detected, the cap set through kv_cpu_isa_set_max).
kv_cpu_isa active_isa();
void set_max_isa(kv_cpu_isa isa);
const char* isa_name(kv_cpu_isa isa);

}  // namespace kv::cpu
