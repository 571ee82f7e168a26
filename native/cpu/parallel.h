// A fixed pool of host threads for CPU kernels. Work is split into contiguous index ranges;
// the calling thread takes a share too, so a pool of one thread is a plain loop.
#pragma once

#include <cstdint>
#include <functional>

namespace kv::cpu {

// Threads the pool uses (hardware concurrency, or KVASIR_CPU_THREADS when set).
int32_t thread_count();

// Calls body(begin, end) on disjoint ranges covering [0, n), in parallel when n is at least
// min_grain per thread. Exceptions thrown by body are rethrown in the caller (the first one).
void parallel_for(int64_t n, int64_t min_grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace kv::cpu
