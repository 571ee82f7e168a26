// Batched page copy on the CPU: indices are validated up front, so a bad index fails the call
// before any byte moves; then pages are copied in parallel.
#include <cstring>

#include "core/error.h"
#include "cpu/cpu_ops.h"
#include "cpu/parallel.h"

namespace kv::cpu {

void page_copy(const PageCopyArgs& a) {
  for (int64_t i = 0; i < a.num_pages; ++i) {
    int64_t s = a.src_pages ? a.src_pages[i] : i;
    int64_t d = a.dst_pages ? a.dst_pages[i] : i;
    if (s < 0 || s >= a.src_capacity_pages)
      fail(KV_STATUS_INVALID_ARGUMENT, "src_pages[", i, "] = ", s, " is outside [0, src_capacity_pages = ",
           a.src_capacity_pages, ")");
    if (d < 0 || d >= a.dst_capacity_pages)
      fail(KV_STATUS_INVALID_ARGUMENT, "dst_pages[", i, "] = ", d, " is outside [0, dst_capacity_pages = ",
           a.dst_capacity_pages, ")");
  }
  auto* dst = static_cast<unsigned char*>(a.dst_base);
  auto* src = static_cast<const unsigned char*>(a.src_base);
  int64_t grain = static_cast<int64_t>(std::max<uint64_t>(1, (1u << 20) / a.page_bytes));  // ~1 MiB per task
  parallel_for(a.num_pages, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t s = a.src_pages ? a.src_pages[i] : i;
      int64_t d = a.dst_pages ? a.dst_pages[i] : i;
      std::memcpy(dst + d * a.page_bytes, src + s * a.page_bytes, a.page_bytes);
    }
  });
}

}  // namespace kv::cpu
