// Batched page copy: one launch moves many scattered fixed-size pages between device and
// pinned host memory (read or written in place over PCIe) or within the device.
//
// The work is cut into warp-sized pieces of one page (32 lanes x kUnroll vectors); a warp
// reads its page indices once, validates them, issues all its loads, then all its stores, so
// every warp keeps kUnroll x 512 bytes in flight: what a zero-copy read over PCIe needs to
// approach the link's bandwidth. Bad indices are recorded in the stream's error record.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 8;

template <typename V>
__global__ void __launch_bounds__(kThreads) page_copy_kernel(PageCopyArgs a, int64_t vecs_per_page,
                                                              int64_t pieces_per_page, DeviceErrorRecord* err) {
  constexpr int64_t kPieceVecs = 32 * kUnroll;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / 32);
  const int64_t pieces = a.num_pages * pieces_per_page;
  for (int64_t piece = (blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x) / 32; piece < pieces;
       piece += warps) {
    const int64_t entry = piece / pieces_per_page;
    const int64_t first = (piece - entry * pieces_per_page) * kPieceVecs;
    const int64_t src_page = a.src_pages ? a.src_pages[entry] : entry;
    const int64_t dst_page = a.dst_pages ? a.dst_pages[entry] : entry;
    const bool src_ok = src_page >= 0 && src_page < a.src_capacity_pages;
    const bool dst_ok = dst_page >= 0 && dst_page < a.dst_capacity_pages;
    if (!src_ok || !dst_ok) {
      if (lane == 0 && first == 0 && atomicCAS(&err->code, 0, src_ok ? kDeviceErrorDstPageOutOfRange
                                                                     : kDeviceErrorSrcPageOutOfRange) == 0) {
        err->entry = entry;
        err->value = src_ok ? dst_page : src_page;
        err->limit = src_ok ? a.dst_capacity_pages : a.src_capacity_pages;
        __threadfence_system();
      }
      continue;
    }
    const V* src = static_cast<const V*>(a.src_base) + src_page * vecs_per_page;
    V* dst = static_cast<V*>(a.dst_base) + dst_page * vecs_per_page;
    V buf[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = first + u * 32 + lane;
      if (i < vecs_per_page) buf[u] = src[i];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = first + u * 32 + lane;
      if (i < vecs_per_page) dst[i] = buf[u];
    }
  }
}

template <typename V>
void launch(Stream* s, const PageCopyArgs& a) {
  const int64_t vecs_per_page = static_cast<int64_t>(a.page_bytes / sizeof(V));
  const int64_t pieces_per_page = (vecs_per_page + 32 * kUnroll - 1) / (32 * kUnroll);
  const int64_t warps_needed = a.num_pages * pieces_per_page;
  const int64_t max_blocks = static_cast<int64_t>(multiprocessor_count(s->device)) * 8;
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((warps_needed + 7) / 8, max_blocks)));
  page_copy_kernel<V><<<blocks, kThreads, 0, s->stream>>>(a, vecs_per_page, pieces_per_page, s->error_record);
  KV_CUDA_CHECK_LAUNCH();
}

}  // namespace

void page_copy(Stream* s, const PageCopyArgs& a) {
  DeviceGuard guard(s->device);
  // The widest access that divides the page size and both bases.
  const uint64_t bits = a.page_bytes | reinterpret_cast<uintptr_t>(a.src_base) | reinterpret_cast<uintptr_t>(a.dst_base);
  if ((bits & 15u) == 0) launch<uint4>(s, a);
  else if ((bits & 3u) == 0) launch<uint32_t>(s, a);
  else launch<unsigned char>(s, a);
}

}  // namespace kv::cuda
