// Arguments of the quantized-KV operations (kv_quant_*), validated once on the host
// (core/api_quant_kv.cc) and handed to a backend. Plain data, shared by g++ and nvcc.
#pragma once

#include <cstdint>

#include "core/paged_args.h"
#include "core/quant_kv.h"

namespace kv {

struct QuantPackArgs {
  kv_dtype dtype = KV_DTYPE_F32;  // of the source pages
  PagedKv src;
  const int32_t* src_pages = nullptr;   // [num_jobs][G / P]
  const int32_t* dst_blocks = nullptr;  // [num_jobs]
  int32_t num_jobs = 0;
  quant::QuantKv dst;
};

struct QuantUnpackArgs {
  kv_dtype dtype = KV_DTYPE_F32;  // of the destination pages
  quant::QuantKv src;
  const int32_t* src_blocks = nullptr;  // [num_jobs]
  const int32_t* dst_pages = nullptr;   // [num_jobs][G / P]
  int32_t num_jobs = 0;
  PagedKv dst;
};

struct QuantDecodeArgs {
  kv_dtype dtype = KV_DTYPE_F32;
  const void* q = nullptr;  // [batch][num_q_heads][head_dim]
  PagedKv kv;               // the bf16 pages (sink and newest tokens)
  PageTable table;
  quant::QuantKv qkv;
  quant::QuantTable qtable;
  PageSelect select;        // over quantized groups; indices null: every group
  void* o = nullptr;
  float* lse = nullptr;     // may be null
  int32_t batch = 0;
  int32_t num_q_heads = 0;
  int32_t max_kv_len = 0;
  float sm_scale = 0.f;
  void* workspace = nullptr;
  uint64_t workspace_bytes = 0;
};

}  // namespace kv

#ifndef __CUDACC__
namespace kv {
// Checks a kv_quant_format and returns its layout (throws naming the field).
quant::Layout check_quant_format(const kv_quant_format* f, const char* what = "format");
// Checks a kv_quant_kv against the stream and converts it.
quant::QuantKv check_quant_kv(const kv_stream& s, const kv_quant_kv* qkv, const char* what = "qkv");
}  // namespace kv
#endif
