// Streams, events and copies. A CPU stream runs work in the calling thread; a CUDA stream
// owns a cudaStream_t and a pinned error record that device kernels report bad input into.
#include <cstring>

#include "core/error.h"
#include "core/handles.h"
#ifdef KV_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace kv {

void check_device(kv_backend backend, int32_t device);  // device.cc

kv_stream& require_stream(kv_stream_t stream, const char* name) {
  if (!stream) fail(KV_STATUS_INVALID_ARGUMENT, name, " is NULL");
  return *stream;
}

namespace {

kv_event& require_event(kv_event_t event, const char* name) {
  if (!event) fail(KV_STATUS_INVALID_ARGUMENT, name, " is NULL");
  return *event;
}

void require_same_device(const kv_stream& s, const kv_event& e) {
  KV_REQUIRE(s.backend == e.backend && s.device == e.device,
             "the event belongs to another backend or device than the stream");
}

// Pointers handed to a CUDA stream must be addressable by its device. The library's own
// allocations are checked from its registry; foreign pointers are asked of the driver.
void check_addressable(const kv_stream& s, const void* ptr, const char* what) {
  if (s.backend != KV_BACKEND_CUDA) return;  // a CPU stream reads any host memory
  Allocation a;
  if (find_allocation(ptr, &a)) {
    if (a.backend != KV_BACKEND_CUDA || a.tier == KV_MEM_HOST)
      fail(KV_STATUS_INVALID_ARGUMENT, what,
           " points to plain host memory, which CUDA kernels cannot read; use a KV_MEM_DEVICE or "
           "KV_MEM_PINNED_HOST buffer of the CUDA backend");
    if (a.tier == KV_MEM_DEVICE && a.device != s.device)
      fail(KV_STATUS_INVALID_ARGUMENT, what, " is memory of CUDA device ", a.device, ", not of the stream's device ",
           s.device);
    return;
  }
#ifdef KV_WITH_CUDA
  cuda::check_addressable(s.cuda, ptr, what);
#else
  (void)what;
#endif
}

}  // namespace

void check_stream_memory(const kv_stream& s, const void* ptr, const char* what) { check_addressable(s, ptr, what); }


}  // namespace kv

extern "C" {

kv_status kv_stream_init(kv_backend backend, int32_t device, kv_stream_t* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  *out = nullptr;
  kv::check_device(backend, device);
  auto* s = new kv_stream{backend, device};
  if (backend == KV_BACKEND_CUDA) {
#ifdef KV_WITH_CUDA
    try {
      s->error_record = static_cast<kv::DeviceErrorRecord*>(
          kv::mem_allocate(backend, device, KV_MEM_PINNED_HOST, sizeof(kv::DeviceErrorRecord)));
      std::memset(s->error_record, 0, sizeof(kv::DeviceErrorRecord));
      s->cuda = kv::cuda::stream_create(device, s->error_record);
    } catch (...) {
      kv::mem_release(backend, device, KV_MEM_PINNED_HOST, s->error_record, sizeof(kv::DeviceErrorRecord));
      delete s;
      throw;
    }
#endif
  }
  *out = s;
  KV_API_END
}

void kv_stream_free(kv_stream_t stream) {
  if (!stream) return;
#ifdef KV_WITH_CUDA
  if (stream->backend == KV_BACKEND_CUDA) {
    kv::cuda::stream_destroy(stream->cuda);
    kv::mem_release(stream->backend, stream->device, KV_MEM_PINNED_HOST, stream->error_record,
                    sizeof(kv::DeviceErrorRecord));
  }
#endif
  delete stream;
}

kv_backend kv_stream_backend(kv_stream_t stream) { return stream ? stream->backend : KV_BACKEND_CPU; }
int32_t kv_stream_device(kv_stream_t stream) { return stream ? stream->device : -1; }

kv_status kv_stream_synchronize(kv_stream_t stream) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) kv::cuda::stream_synchronize(s.cuda);
#else
  (void)s;
#endif
  KV_API_END
}

kv_status kv_event_init(kv_stream_t stream, kv_event_t* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  *out = nullptr;
  auto& s = kv::require_stream(stream);
  auto* e = new kv_event{s.backend, s.device};
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    try {
      e->cuda = kv::cuda::event_create(s.device);
    } catch (...) {
      delete e;
      throw;
    }
  }
#endif
  *out = e;
  KV_API_END
}

void kv_event_free(kv_event_t event) {
  if (!event) return;
#ifdef KV_WITH_CUDA
  if (event->backend == KV_BACKEND_CUDA) kv::cuda::event_destroy(event->cuda);
#endif
  delete event;
}

kv_status kv_event_record(kv_event_t event, kv_stream_t stream) {
  KV_API_BEGIN
  auto& e = kv::require_event(event, "event");
  auto& s = kv::require_stream(stream);
  kv::require_same_device(s, e);
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) kv::cuda::event_record(e.cuda, s.cuda);
#endif
  e.host_time = std::chrono::steady_clock::now();
  e.recorded = true;
  KV_API_END
}

kv_status kv_event_synchronize(kv_event_t event) {
  KV_API_BEGIN
  auto& e = kv::require_event(event, "event");
  KV_REQUIRE(e.recorded, "event was never recorded");
#ifdef KV_WITH_CUDA
  if (e.backend == KV_BACKEND_CUDA) kv::cuda::event_synchronize(e.cuda);
#endif
  KV_API_END
}

kv_status kv_stream_wait_event(kv_stream_t stream, kv_event_t event) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  auto& e = kv::require_event(event, "event");
  kv::require_same_device(s, e);
  KV_REQUIRE(e.recorded, "event was never recorded");
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) kv::cuda::stream_wait_event(s.cuda, e.cuda);
#endif
  KV_API_END
}

kv_status kv_event_elapsed_ms(kv_event_t start, kv_event_t end, float* out_ms) {
  KV_API_BEGIN
  auto& a = kv::require_event(start, "start");
  auto& b = kv::require_event(end, "end");
  KV_REQUIRE_NOT_NULL(out_ms);
  KV_REQUIRE(a.recorded && b.recorded, "both events must be recorded");
  KV_REQUIRE(a.backend == b.backend && a.device == b.device, "events of different devices");
#ifdef KV_WITH_CUDA
  if (a.backend == KV_BACKEND_CUDA) {
    *out_ms = kv::cuda::event_elapsed_ms(a.cuda, b.cuda);
    return KV_STATUS_OK;
  }
#endif
  *out_ms = std::chrono::duration<float, std::milli>(b.host_time - a.host_time).count();
  KV_API_END
}

kv_status kv_memcpy_async(kv_stream_t stream, void* dst, const void* src, uint64_t size_bytes) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  if (size_bytes == 0) return KV_STATUS_OK;
  KV_REQUIRE_NOT_NULL(dst);
  KV_REQUIRE_NOT_NULL(src);
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::memcpy_async(s.cuda, dst, src, size_bytes);
    return KV_STATUS_OK;
  }
#endif
  (void)s;
  std::memmove(dst, src, size_bytes);
  KV_API_END
}

kv_status kv_memset_async(kv_stream_t stream, void* dst, int32_t value, uint64_t size_bytes) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  KV_REQUIRE(value >= 0 && value <= 255, "value=", value, " is not a byte (0..255)");
  if (size_bytes == 0) return KV_STATUS_OK;
  KV_REQUIRE_NOT_NULL(dst);
  kv::check_stream_memory(s, dst, "dst");
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::memset_async(s.cuda, dst, value, size_bytes);
    return KV_STATUS_OK;
  }
#endif
  std::memset(dst, value, size_bytes);
  KV_API_END
}

}  // extern "C"
