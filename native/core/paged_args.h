// Arguments of the paged KV operations (kv_paged_*, kv_page_summary_update_async,
// kv_quest_select_async), validated once on the host (core/paged_args.cc) and handed to a
// backend. Plain data, shared by g++ and nvcc. The address arithmetic lives here so that the
// CPU reference and the CUDA kernels read pages the same way.
#pragma once

#include <cstdint>

#include "core/op_args.h"

namespace kv {

// kv_paged_kv, with the address of a row.
struct PagedKv {
  void* k = nullptr;
  void* v = nullptr;
  int64_t num_pages = 0;
  int32_t page_tokens = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int64_t page_stride = 0;
  int64_t head_stride = 0;  // 0: single-head pages
  int64_t token_stride = 0;

  // Element offset of row (page, head, token).
  KV_HOST_DEVICE int64_t offset(int64_t page, int32_t head, int32_t token) const {
    return page * page_stride + head * head_stride + token * token_stride;
  }
};

// kv_page_table: physical page of (sequence b, KV head h, logical page j).
struct PageTable {
  const int32_t* pages = nullptr;
  int64_t seq_stride = 0;
  int64_t head_stride = 0;  // 0: shared by the heads
  const int32_t* kv_lens = nullptr;

  KV_HOST_DEVICE int32_t page(int32_t b, int32_t h, int64_t j) const {
    return pages[b * seq_stride + h * head_stride + j];
  }
};

// kv_page_select; indices == nullptr means "every page" (dense attention).
struct PageSelect {
  const int32_t* indices = nullptr;
  const int32_t* counts = nullptr;
  int32_t stride = 0;
};

// kv_page_summaries: row (page, head) of 2*head_dim elements (min, then max).
struct PageSummaries {
  void* data = nullptr;
  int64_t page_stride = 0;
  int64_t head_stride = 0;

  KV_HOST_DEVICE int64_t offset(int64_t page, int32_t head) const { return page * page_stride + head * head_stride; }
};

struct PagedAppendArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  const void* k = nullptr;  // [num_tokens][num_kv_heads][head_dim]
  const void* v = nullptr;
  const int64_t* slots = nullptr;
  int64_t slots_head_stride = 0;  // 0 or num_kv_heads
  int64_t num_tokens = 0;
  PagedKv kv;
};

struct PagedDecodeArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  const void* q = nullptr;  // [batch][num_q_heads][head_dim]
  PagedKv kv;
  PageTable table;
  PageSelect select;        // indices null: all pages
  void* o = nullptr;        // like q
  float* lse = nullptr;     // [batch][num_q_heads], may be null
  int32_t batch = 0;
  int32_t num_q_heads = 0;
  int32_t max_kv_len = 0;
  float sm_scale = 0.f;
  void* workspace = nullptr;
  uint64_t workspace_bytes = 0;
};

struct PagedPrefillArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  const void* q = nullptr;           // [q_indptr[batch]][num_q_heads][head_dim]
  const int32_t* q_indptr = nullptr; // [batch + 1]
  PagedKv kv;
  PageTable table;
  void* o = nullptr;
  float* lse = nullptr;              // [rows][num_q_heads], may be null
  int32_t batch = 0;
  int32_t num_q_heads = 0;
  int32_t max_q_len = 0;
  int32_t max_kv_len = 0;
  float sm_scale = 0.f;
};

struct PageSummaryArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  PagedKv kv;
  const int32_t* pages = nullptr;         // [num_update]
  const int32_t* valid_tokens = nullptr;  // [num_update], 1..P
  int32_t num_update = 0;
  PageSummaries summaries;
};

struct QuestSelectArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  const void* q = nullptr;  // [batch][num_q_heads][head_dim]
  PagedKv kv;
  PageTable table;
  PageSummaries summaries;
  int32_t batch = 0;
  int32_t num_q_heads = 0;
  int32_t max_kv_len = 0;
  int32_t top_k = 0;
  int32_t* indices_out = nullptr;  // [batch][num_kv_heads][out_stride]
  int32_t* counts_out = nullptr;   // [batch][num_kv_heads]
  int32_t out_stride = 0;
  void* workspace = nullptr;
  uint64_t workspace_bytes = 0;
};

}  // namespace kv

// Host-side validation (core/paged_args.cc), shared by the entry points of every paged
// operation: each throws kv::Error (through fail) with a message naming the argument.
#ifndef __CUDACC__
struct kv_stream;
namespace kv {
// Checks a kv_paged_kv against dtype and the stream (bases addressable; strides and alignment)
// and converts it. what names the argument in messages.
PagedKv check_paged_kv(const kv_stream& s, kv_dtype dtype, const kv_paged_kv* kv, const char* what = "kv");
// Checks a kv_page_table (pages and kv_lens addressable, strides non-negative).
PageTable check_page_table(const kv_stream& s, const kv_page_table* table, const PagedKv& kv,
                           const char* what = "table");
// Checks q/o head counts against kv (num_q_heads a positive multiple of num_kv_heads).
void check_heads(int32_t num_q_heads, const PagedKv& kv);
// Shared dtype/tensor checks of core/api_ops.cc, exported for the paged entry points.
void check_kv_dtype(kv_dtype dtype);
void check_kv_tensor(const kv_stream& s, const void* ptr, const char* what);
}  // namespace kv
#endif
