// Arguments of the operations, validated once in core/api_ops.cc and handed to a backend.
// Shared by the CPU (g++) and CUDA (nvcc) backends, so plain data only.
#pragma once

#include <cstdint>

#include "kvasir/kvasir.h"

#if defined(__CUDACC__)
#define KV_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define KV_HOST_DEVICE inline
#endif

namespace kv {

inline int64_t dtype_size(kv_dtype dtype) { return dtype == KV_DTYPE_BF16 ? 2 : 4; }

// The states a merge reads: either two arbitrary states (pair) or num_states states strided
// through one array [num_states][rows][head_dim] and [num_states][rows].
struct MergeSources {
  int32_t count = 0;
  bool pair = false;
  const void* o_pair[2] = {nullptr, nullptr};
  const float* lse_pair[2] = {nullptr, nullptr};
  const void* o_base = nullptr;
  const float* lse_base = nullptr;
  int64_t o_state_stride = 0;    // elements between consecutive states' o
  int64_t lse_state_stride = 0;  // elements between consecutive states' lse

  template <typename T>
  KV_HOST_DEVICE const T* o(int32_t i) const {
    return pair ? static_cast<const T*>(o_pair[i]) : static_cast<const T*>(o_base) + i * o_state_stride;
  }
  KV_HOST_DEVICE const float* lse(int32_t i) const {
    return pair ? lse_pair[i] : lse_base + i * lse_state_stride;
  }
};

struct MergeArgs {
  MergeSources in;
  kv_dtype in_dtype = KV_DTYPE_F32;
  kv_dtype out_dtype = KV_DTYPE_F32;
  void* o_out = nullptr;
  float* lse_out = nullptr;  // may be null
  int64_t rows = 0;
  int32_t head_dim = 0;
};

struct AttentionDecodeArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;  // may be null
  int32_t batch = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int64_t kv_len = 0;
  float sm_scale = 0.f;
  void* workspace = nullptr;
  uint64_t workspace_bytes = 0;
};

// Causal prefill attention (kv_attention_prefill_async): queries are the last q_len of kv_len
// positions of each sequence.
struct AttentionPrefillArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  const void* q = nullptr;  // [batch][q_len][num_q_heads][head_dim]
  const void* k = nullptr;  // [batch][kv_len][num_kv_heads][head_dim]
  const void* v = nullptr;
  void* o = nullptr;        // like q
  float* lse = nullptr;     // [batch][q_len][num_q_heads], may be null
  int32_t batch = 0;
  int32_t q_len = 0;
  int64_t kv_len = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  float sm_scale = 0.f;
};

struct PageCopyArgs {
  void* dst_base = nullptr;
  int64_t dst_capacity_pages = 0;
  const void* src_base = nullptr;
  int64_t src_capacity_pages = 0;
  uint64_t page_bytes = 0;
  const int64_t* src_pages = nullptr;  // null: identity
  const int64_t* dst_pages = nullptr;  // null: identity
  int64_t num_pages = 0;
};

}  // namespace kv

namespace kv {

// A device kernel that finds bad input it could not check on the host (an index read from
// device memory) records the first such error here: pinned, mapped memory owned by the
// stream, read by kv_stream_synchronize. code 0 means no error.
enum DeviceErrorCode : int32_t {
  kDeviceErrorNone = 0,
  kDeviceErrorSrcPageOutOfRange = 1,
  kDeviceErrorDstPageOutOfRange = 2,
  // Paged KV operations (core/paged_args.h): value/limit as below, entry = flat index.
  kDeviceErrorPageIdOutOfRange = 3,   // a page table entry outside [0, num_pages)
  kDeviceErrorSlotOutOfRange = 4,     // an append slot outside [0, num_pages * page_tokens)
  kDeviceErrorKvLenOutOfRange = 5,    // kv_lens[b] outside [0, max_kv_len] (or < q_len)
  kDeviceErrorSelectOutOfRange = 6,   // a selected logical page outside [0, ceil(kv_len/P)), or a count > stride
  kDeviceErrorQIndptr = 7,            // q_indptr not non-decreasing from 0, or a q_len > max_q_len
  // Quantized KV operations (core/quant_args.h).
  kDeviceErrorBlockIdOutOfRange = 8,  // a quantized block id outside [0, num_blocks)
  kDeviceErrorQuantCount = 9,         // a sequence's quantized group count past its kv_len, or a bad block selection
};

// The message of a device error code, for kv_stream_synchronize.
inline const char* device_error_what(int32_t code) {
  switch (code) {
    case kDeviceErrorSrcPageOutOfRange: return "kv_page_copy_async: src_pages entry outside [0, src_capacity_pages)";
    case kDeviceErrorDstPageOutOfRange: return "kv_page_copy_async: dst_pages entry outside [0, dst_capacity_pages)";
    case kDeviceErrorPageIdOutOfRange: return "a paged KV operation: page table entry outside [0, num_pages)";
    case kDeviceErrorSlotOutOfRange: return "kv_paged_append_async: slot outside [0, num_pages * page_tokens)";
    case kDeviceErrorKvLenOutOfRange: return "a paged KV operation: kv_lens entry outside [0, max_kv_len] (or below its q_len)";
    case kDeviceErrorSelectOutOfRange: return "a paged KV operation: selected page outside [0, ceil(kv_len / page_tokens)) or count > stride";
    case kDeviceErrorQIndptr: return "kv_paged_prefill_async: q_indptr not non-decreasing from 0, or a q_len > max_q_len";
    case kDeviceErrorBlockIdOutOfRange: return "a quantized KV operation: block id outside [0, num_blocks)";
    case kDeviceErrorQuantCount: return "kv_quant_decode_async: qtable.counts entry past (kv_len - sink_tokens) / group_tokens, or a block selection entry outside [0, counts) or count > stride";
    default: return "unknown device error";
  }
}

struct DeviceErrorRecord {
  int32_t code;
  int32_t reserved;
  int64_t entry;  // position in the index list
  int64_t value;  // the offending index
  int64_t limit;  // the capacity it broke
};

}  // namespace kv
