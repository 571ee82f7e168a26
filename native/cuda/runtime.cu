// CUDA runtime plumbing behind the ABI: devices, the three memory tiers, streams, events and
// copies. Every CUDA error becomes a kv::Error naming the call and the CUDA error.
#include <cuda_runtime.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/cuda_common.cuh"

namespace kv::cuda {

void throw_cuda(cudaError_t err, const char* call, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  kv_status status = KV_STATUS_DEVICE_ERROR;
  if (err == cudaErrorMemoryAllocation) status = KV_STATUS_OUT_OF_MEMORY;
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver || err == cudaErrorInvalidDevice)
    status = KV_STATUS_NO_DEVICE;
  (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  fail(status, call, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") at ",
       base ? base + 1 : file, ":", line);
}

DeviceGuard::DeviceGuard(int32_t device) {
  KV_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) {
    KV_CUDA_CHECK(cudaSetDevice(device));
    changed_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (changed_) (void)cudaSetDevice(previous_);
}

int32_t multiprocessor_count(int32_t device) {
  static std::mutex mutex;
  static std::vector<int32_t> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (device >= static_cast<int32_t>(cache.size())) cache.resize(device + 1, 0);
  if (cache[device] == 0) {
    int value = 0;
    KV_CUDA_CHECK(cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device));
    cache[device] = value;
  }
  return cache[device];
}

int32_t device_count(std::string* reason) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (reason) {
      *reason = std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")";
    }
    return 0;
  }
  if (count == 0 && reason) *reason = "the driver reports no CUDA device";
  return count;
}

int32_t runtime_version() {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : 0;
}

int32_t driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return v;
}

void device_props(int32_t ordinal, kv_device_props* out) {
  cudaDeviceProp p;
  KV_CUDA_CHECK(cudaGetDeviceProperties(&p, ordinal));
  // Truncation to the ABI's 127 characters is intended.
  std::memcpy(out->name, p.name, std::min(sizeof out->name - 1, std::strlen(p.name)));
  std::snprintf(out->arch, sizeof out->arch, "sm_%d%d", p.major, p.minor);
  out->total_memory_bytes = p.totalGlobalMem;
  out->compute_units = p.multiProcessorCount;
  out->compute_major = p.major;
  out->compute_minor = p.minor;
  out->pci_bus_id = p.pciBusID;
  out->l2_cache_bytes = static_cast<uint64_t>(p.l2CacheSize);
  out->shared_memory_per_block_bytes = p.sharedMemPerBlockOptin;
}

void* alloc(kv_mem_tier tier, int32_t device, uint64_t bytes) {
  DeviceGuard guard(device);
  void* p = nullptr;
  cudaError_t err = tier == KV_MEM_DEVICE ? cudaMalloc(&p, bytes)
                                          : cudaHostAlloc(&p, bytes, cudaHostAllocMapped | cudaHostAllocPortable);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    if (tier == KV_MEM_DEVICE) (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    fail(KV_STATUS_OUT_OF_MEMORY, "could not allocate ", bytes, " bytes of ",
         tier == KV_MEM_DEVICE ? "device" : "pinned host", " memory on CUDA device ", device,
         tier == KV_MEM_DEVICE ? " (free: " + std::to_string(free_bytes) + " of " + std::to_string(total_bytes) + " bytes)"
                               : std::string());
  }
  if (err != cudaSuccess) throw_cuda(err, tier == KV_MEM_DEVICE ? "cudaMalloc" : "cudaHostAlloc", __FILE__, __LINE__);
  return p;
}

void release(kv_mem_tier tier, int32_t device, void* ptr) noexcept {
  int previous = -1;
  (void)cudaGetDevice(&previous);
  if (previous != device) (void)cudaSetDevice(device);
  if (tier == KV_MEM_DEVICE) (void)cudaFree(ptr);
  else (void)cudaFreeHost(ptr);
  if (previous != device && previous >= 0) (void)cudaSetDevice(previous);
}

Stream* stream_create(int32_t device, DeviceErrorRecord* error_record) {
  DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  KV_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void* device_record = nullptr;
  cudaError_t err = cudaHostGetDevicePointer(&device_record, error_record, 0);
  if (err != cudaSuccess) {
    (void)cudaStreamDestroy(s);
    throw_cuda(err, "cudaHostGetDevicePointer", __FILE__, __LINE__);
  }
  void* arrivals = nullptr;
  err = cudaMalloc(&arrivals, kArrivalCounters * sizeof(uint32_t));
  if (err == cudaSuccess) err = cudaMemsetAsync(arrivals, 0, kArrivalCounters * sizeof(uint32_t), s);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);  // zero before any graph captures them
  if (err != cudaSuccess) {
    if (arrivals) (void)cudaFree(arrivals);
    (void)cudaStreamDestroy(s);
    throw_cuda(err, "arrival counters", __FILE__, __LINE__);
  }
  return new Stream{s, device, static_cast<DeviceErrorRecord*>(device_record), static_cast<uint32_t*>(arrivals)};
}

void stream_destroy(Stream* stream) noexcept {
  if (!stream) return;
  int previous = -1;
  (void)cudaGetDevice(&previous);
  (void)cudaSetDevice(stream->device);
  (void)cudaStreamSynchronize(stream->stream);
  (void)cudaStreamDestroy(stream->stream);
  (void)cudaFree(stream->arrivals);
  if (previous >= 0) (void)cudaSetDevice(previous);
  delete stream;
}

int32_t stream_device(const Stream* stream) { return stream->device; }

void stream_synchronize(Stream* stream) {
  KV_CUDA_CHECK(cudaStreamSynchronize(stream->stream));
  // The record is pinned host memory: after the synchronize the host sees every device write.
  volatile DeviceErrorRecord* rec = stream->error_record;
  if (rec->code == kDeviceErrorNone) return;
  DeviceErrorRecord copy;
  copy.code = rec->code;
  copy.entry = rec->entry;
  copy.value = rec->value;
  copy.limit = rec->limit;
  rec->code = kDeviceErrorNone;
  if (copy.code == kDeviceErrorSrcPageOutOfRange || copy.code == kDeviceErrorDstPageOutOfRange) {
    const char* list = copy.code == kDeviceErrorSrcPageOutOfRange ? "src_pages" : "dst_pages";
    const char* cap = copy.code == kDeviceErrorSrcPageOutOfRange ? "src_capacity_pages" : "dst_capacity_pages";
    fail(KV_STATUS_INVALID_ARGUMENT, "an earlier kv_page_copy_async on this stream found ", list, "[", copy.entry,
         "] = ", copy.value, " outside [0, ", cap, " = ", copy.limit, "); that page was not copied");
  }
  fail(KV_STATUS_INVALID_ARGUMENT, "an earlier operation on this stream failed on the device: ",
       device_error_what(copy.code), " (entry ", copy.entry, ", value ", copy.value, ", limit ", copy.limit,
       "); its output is not valid");
}

void* event_create(int32_t device) {
  DeviceGuard guard(device);
  cudaEvent_t e = nullptr;
  KV_CUDA_CHECK(cudaEventCreate(&e));
  return e;
}

void event_destroy(void* event) noexcept {
  if (event) (void)cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

void event_record(void* event, Stream* stream) {
  KV_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), stream->stream));
}

void event_synchronize(void* event) { KV_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event))); }

void stream_wait_event(Stream* stream, void* event) {
  KV_CUDA_CHECK(cudaStreamWaitEvent(stream->stream, static_cast<cudaEvent_t>(event), 0));
}

float event_elapsed_ms(void* start, void* end) {
  float ms = 0.f;
  KV_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return ms;
}

void check_addressable(const Stream* stream, const void* ptr, const char* what) {
  cudaPointerAttributes attr;
  cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  if (err != cudaSuccess) throw_cuda(err, "cudaPointerGetAttributes", __FILE__, __LINE__);
  switch (attr.type) {
    case cudaMemoryTypeUnregistered:
      fail(KV_STATUS_INVALID_ARGUMENT, what,
           " points to pageable host memory, which CUDA kernels cannot read; use a KV_MEM_DEVICE or "
           "KV_MEM_PINNED_HOST buffer");
    case cudaMemoryTypeDevice:
      if (attr.device != stream->device)
        fail(KV_STATUS_INVALID_ARGUMENT, what, " is memory of CUDA device ", attr.device, ", not of the stream's device ",
             stream->device);
      return;
    case cudaMemoryTypeHost:
      if (attr.devicePointer != ptr)
        fail(KV_STATUS_INVALID_ARGUMENT, what, " is pinned host memory that is not mapped at the same address on the device");
      return;
    default:
      return;  // managed memory
  }
}

void memcpy_async(Stream* stream, void* dst, const void* src, uint64_t bytes) {
  KV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream->stream));
}

void memset_async(Stream* stream, void* dst, int32_t value, uint64_t bytes) {
  DeviceGuard guard(stream->device);
  cudaPointerAttributes attr;
  KV_CUDA_CHECK(cudaPointerGetAttributes(&attr, dst));
  if (attr.type == cudaMemoryTypeHost) {
    // cudaMemsetAsync takes device memory only; pinned memory is set in stream order by the host.
    KV_CUDA_CHECK(cudaStreamSynchronize(stream->stream));
    std::memset(dst, value, bytes);
    return;
  }
  KV_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, stream->stream));
}

}  // namespace kv::cuda
