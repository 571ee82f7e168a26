// The CUDA backend as seen from the core: plain C++ declarations with no CUDA types, so the
// core compiles with the host compiler alone. Implemented in native/cuda/*.cu; every function
// throws kv::Error on failure. Only referenced when KV_WITH_CUDA is defined.
#pragma once

#include <cstdint>
#include <string>

#include "core/op_args.h"
#include "kvasir/kvasir.h"

namespace kv::cuda {

struct Stream;  // cudaStream_t plus the device and its error record

// Devices the driver shows; 0 with the reason when there is no driver or no device.
int32_t device_count(std::string* reason);
void device_props(int32_t ordinal, kv_device_props* out);
// Runtime and driver versions as CUDA encodes them (1000 * major + 10 * minor); 0 if unknown.
int32_t runtime_version();
int32_t driver_version();

void* alloc(kv_mem_tier tier, int32_t device, uint64_t bytes);
void release(kv_mem_tier tier, int32_t device, void* ptr) noexcept;

Stream* stream_create(int32_t device, DeviceErrorRecord* error_record);
void stream_destroy(Stream* stream) noexcept;
void stream_synchronize(Stream* stream);
int32_t stream_device(const Stream* stream);

void* event_create(int32_t device);
void event_destroy(void* event) noexcept;
void event_record(void* event, Stream* stream);
void event_synchronize(void* event);
void stream_wait_event(Stream* stream, void* event);
float event_elapsed_ms(void* start, void* end);

// Throws KV_STATUS_INVALID_ARGUMENT naming `what` unless the stream's device can address ptr.
void check_addressable(const Stream* stream, const void* ptr, const char* what);

void memcpy_async(Stream* stream, void* dst, const void* src, uint64_t bytes);
void memset_async(Stream* stream, void* dst, int32_t value, uint64_t bytes);
void page_copy(Stream* stream, const PageCopyArgs& args);
void merge_states(Stream* stream, const MergeArgs& args);
void attention_decode(Stream* stream, const AttentionDecodeArgs& args);
uint64_t attention_decode_workspace_bytes(int32_t device, const AttentionDecodeArgs& shape);
void attention_prefill(Stream* stream, const AttentionPrefillArgs& args);
void roofline_probe(Stream* stream, uint64_t buffer_bytes, int32_t repetitions, kv_roofline* out);

}  // namespace kv::cuda
