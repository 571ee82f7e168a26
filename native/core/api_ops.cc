// The operations' ABI entry points: every argument is checked here, once, with a message
// naming it, before a backend sees it.
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/handles.h"
#include "cpu/cpu_ops.h"
#ifdef KV_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace kv {

void check_stream_memory(const kv_stream& s, const void* ptr, const char* what);  // stream.cc

namespace {

constexpr int64_t kMaxElements = int64_t{1} << 48;  // guards size arithmetic against overflow

void check_dtype(kv_dtype dtype) {
  KV_REQUIRE(dtype == KV_DTYPE_F32 || dtype == KV_DTYPE_BF16, "dtype=", static_cast<int>(dtype),
             " is not KV_DTYPE_F32 or KV_DTYPE_BF16");
}

// Checks a tensor pointer: not NULL and addressable by the stream's device.
void check_tensor(const kv_stream& s, const void* ptr, const char* what) {
  if (!ptr) fail(KV_STATUS_INVALID_ARGUMENT, what, " is NULL");
  check_stream_memory(s, ptr, what);
}

void check_rows(int64_t rows, int32_t head_dim, int64_t states) {
  KV_REQUIRE(rows >= 0, "rows=", rows, " must be >= 0");
  KV_REQUIRE(head_dim > 0, "head_dim=", head_dim, " must be > 0");
  KV_REQUIRE(rows <= kMaxElements / head_dim / states, "rows * head_dim * states is too large (",
             rows, " x ", head_dim, " x ", states, ")");
}

void run_merge(kv_stream& s, const MergeArgs& a) {
  if (a.rows == 0) return;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    cuda::merge_states(s.cuda, a);
    return;
  }
#endif
  (void)s;
  cpu::merge_states(a);
}

void merge_pair(kv_stream_t stream, kv_dtype dtype, const void* o_a, const float* lse_a, const void* o_b,
                const float* lse_b, void* o_out, float* lse_out, int64_t rows, int32_t head_dim) {
  auto& s = require_stream(stream);
  check_dtype(dtype);
  check_rows(rows, head_dim, 2);
  if (rows == 0) return;
  check_tensor(s, o_a, "o_a");
  check_tensor(s, lse_a, "lse_a");
  check_tensor(s, o_b, "o_b");
  check_tensor(s, lse_b, "lse_b");
  check_tensor(s, o_out, "o_out");
  if (lse_out) check_tensor(s, lse_out, "lse_out");
  MergeArgs a;
  a.in.count = 2;
  a.in.pair = true;
  a.in.o_pair[0] = o_a;
  a.in.o_pair[1] = o_b;
  a.in.lse_pair[0] = lse_a;
  a.in.lse_pair[1] = lse_b;
  a.in_dtype = a.out_dtype = dtype;
  a.o_out = o_out;
  a.lse_out = lse_out;
  a.rows = rows;
  a.head_dim = head_dim;
  run_merge(s, a);
}

}  // namespace
}  // namespace kv

extern "C" {

kv_status kv_merge_state_async(kv_stream_t stream, kv_dtype dtype, const void* o_a, const float* lse_a,
                               const void* o_b, const float* lse_b, void* o_out, float* lse_out, int64_t rows,
                               int32_t head_dim) {
  KV_API_BEGIN
  kv::merge_pair(stream, dtype, o_a, lse_a, o_b, lse_b, o_out, lse_out, rows, head_dim);
  KV_API_END
}

kv_status kv_merge_state_inplace_async(kv_stream_t stream, kv_dtype dtype, void* o, float* lse,
                                       const void* o_other, const float* lse_other, int64_t rows,
                                       int32_t head_dim) {
  KV_API_BEGIN
  kv::merge_pair(stream, dtype, o, lse, o_other, lse_other, o, lse, rows, head_dim);
  KV_API_END
}

kv_status kv_merge_states_async(kv_stream_t stream, kv_dtype dtype, const void* o_states, const float* lse_states,
                                int32_t num_states, void* o_out, float* lse_out, int64_t rows, int32_t head_dim) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_dtype(dtype);
  KV_REQUIRE(num_states >= 1, "num_states=", num_states, " must be >= 1");
  kv::check_rows(rows, head_dim, num_states);
  if (rows == 0) return KV_STATUS_OK;
  kv::check_tensor(s, o_states, "o_states");
  kv::check_tensor(s, lse_states, "lse_states");
  kv::check_tensor(s, o_out, "o_out");
  if (lse_out) kv::check_tensor(s, lse_out, "lse_out");
  kv::MergeArgs a;
  a.in.count = num_states;
  a.in.o_base = o_states;
  a.in.lse_base = lse_states;
  a.in.o_state_stride = rows * head_dim;
  a.in.lse_state_stride = rows;
  a.in_dtype = a.out_dtype = dtype;
  a.o_out = o_out;
  a.lse_out = lse_out;
  a.rows = rows;
  a.head_dim = head_dim;
  kv::run_merge(s, a);
  KV_API_END
}

kv_status kv_attention_decode_async(kv_stream_t stream, kv_dtype dtype, const void* q, const void* k, const void* v,
                                    void* o, float* lse, int32_t batch, int32_t num_q_heads, int32_t num_kv_heads,
                                    int32_t head_dim, int64_t kv_len, float sm_scale, void* workspace,
                                    uint64_t workspace_bytes) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_dtype(dtype);
  KV_REQUIRE(batch >= 0, "batch=", batch, " must be >= 0");
  KV_REQUIRE(num_kv_heads > 0, "num_kv_heads=", num_kv_heads, " must be > 0");
  KV_REQUIRE(num_q_heads > 0 && num_q_heads % num_kv_heads == 0, "num_q_heads=", num_q_heads,
             " must be a positive multiple of num_kv_heads=", num_kv_heads);
  if (head_dim != 64 && head_dim != 128 && head_dim != 256)
    kv::fail(KV_STATUS_UNSUPPORTED, "head_dim=", head_dim, " is not supported (64, 128 or 256)");
  KV_REQUIRE(kv_len >= 0, "kv_len=", kv_len, " must be >= 0");
  KV_REQUIRE(std::isfinite(sm_scale) && sm_scale > 0.f, "sm_scale=", sm_scale, " must be finite and > 0");
  KV_REQUIRE(kv_len <= kv::kMaxElements / (static_cast<int64_t>(num_kv_heads) * head_dim) / (batch > 0 ? batch : 1),
             "batch * kv_len * num_kv_heads * head_dim is too large");
  if (batch == 0) return KV_STATUS_OK;
  kv::check_tensor(s, q, "q");
  if (kv_len > 0) {
    kv::check_tensor(s, k, "k");
    kv::check_tensor(s, v, "v");
  }
  kv::check_tensor(s, o, "o");
  if (lse) kv::check_tensor(s, lse, "lse");
  if (workspace_bytes > 0) kv::check_tensor(s, workspace, "workspace");
  kv::AttentionDecodeArgs a;
  a.dtype = dtype;
  a.q = q;
  a.k = k;
  a.v = v;
  a.o = o;
  a.lse = lse;
  a.batch = batch;
  a.num_q_heads = num_q_heads;
  a.num_kv_heads = num_kv_heads;
  a.head_dim = head_dim;
  a.kv_len = kv_len;
  a.sm_scale = sm_scale;
  a.workspace = workspace;
  a.workspace_bytes = workspace ? workspace_bytes : 0;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::attention_decode(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::attention_decode(a);
  KV_API_END
}

uint64_t kv_attention_decode_workspace_bytes(kv_stream_t stream, int32_t batch, int32_t num_q_heads,
                                             int32_t head_dim, int64_t kv_len) {
  if (!stream || batch <= 0 || num_q_heads <= 0 || head_dim <= 0 || kv_len <= 0) return 0;
#ifdef KV_WITH_CUDA
  if (stream->backend == KV_BACKEND_CUDA) {
    try {
      kv::AttentionDecodeArgs shape;
      shape.batch = batch;
      shape.num_q_heads = num_q_heads;
      shape.head_dim = head_dim;
      shape.kv_len = kv_len;
      return kv::cuda::attention_decode_workspace_bytes(stream->device, shape);
    } catch (...) {
      return 0;
    }
  }
#endif
  return 0;  // the CPU backend keeps its own scratch
}

kv_status kv_attention_prefill_async(kv_stream_t stream, kv_dtype dtype, const void* q, const void* k, const void* v,
                                     void* o, float* lse, int32_t batch, int32_t q_len, int64_t kv_len,
                                     int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim, float sm_scale) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_dtype(dtype);
  KV_REQUIRE(batch >= 0, "batch=", batch, " must be >= 0");
  KV_REQUIRE(q_len >= 0, "q_len=", q_len, " must be >= 0");
  KV_REQUIRE(kv_len >= q_len, "kv_len=", kv_len, " must be >= q_len=", q_len,
             " (the queries are the last q_len of kv_len positions)");
  KV_REQUIRE(num_kv_heads > 0, "num_kv_heads=", num_kv_heads, " must be > 0");
  KV_REQUIRE(num_q_heads > 0 && num_q_heads % num_kv_heads == 0, "num_q_heads=", num_q_heads,
             " must be a positive multiple of num_kv_heads=", num_kv_heads);
  if (head_dim != 64 && head_dim != 128 && head_dim != 256)
    kv::fail(KV_STATUS_UNSUPPORTED, "head_dim=", head_dim, " is not supported (64, 128 or 256)");
  KV_REQUIRE(std::isfinite(sm_scale) && sm_scale > 0.f, "sm_scale=", sm_scale, " must be finite and > 0");
  const int64_t batches = batch > 0 ? batch : 1;
  KV_REQUIRE(kv_len <= kv::kMaxElements / (static_cast<int64_t>(num_kv_heads) * head_dim) / batches,
             "batch * kv_len * num_kv_heads * head_dim is too large");
  KV_REQUIRE(q_len <= kv::kMaxElements / (static_cast<int64_t>(num_q_heads) * head_dim) / batches,
             "batch * q_len * num_q_heads * head_dim is too large");
  if (batch == 0 || q_len == 0) return KV_STATUS_OK;
  kv::check_tensor(s, q, "q");
  kv::check_tensor(s, k, "k");
  kv::check_tensor(s, v, "v");
  kv::check_tensor(s, o, "o");
  if (lse) kv::check_tensor(s, lse, "lse");
  kv::AttentionPrefillArgs a;
  a.dtype = dtype;
  a.q = q;
  a.k = k;
  a.v = v;
  a.o = o;
  a.lse = lse;
  a.batch = batch;
  a.q_len = q_len;
  a.kv_len = kv_len;
  a.num_q_heads = num_q_heads;
  a.num_kv_heads = num_kv_heads;
  a.head_dim = head_dim;
  a.sm_scale = sm_scale;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::attention_prefill(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::attention_prefill(a);
  KV_API_END
}

kv_status kv_page_copy_async(kv_stream_t stream, void* dst_base, int64_t dst_capacity_pages, const void* src_base,
                             int64_t src_capacity_pages, uint64_t page_bytes, const int64_t* src_pages,
                             const int64_t* dst_pages, int64_t num_pages) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  KV_REQUIRE(num_pages >= 0, "num_pages=", num_pages, " must be >= 0");
  KV_REQUIRE(page_bytes > 0, "page_bytes must be > 0");
  KV_REQUIRE(src_capacity_pages >= 0 && dst_capacity_pages >= 0, "capacities must be >= 0");
  KV_REQUIRE(page_bytes <= static_cast<uint64_t>(kv::kMaxElements) &&
                 static_cast<uint64_t>(std::max(src_capacity_pages, dst_capacity_pages)) <=
                     static_cast<uint64_t>(kv::kMaxElements) / page_bytes,
             "capacity_pages * page_bytes is too large");
  if (num_pages == 0) return KV_STATUS_OK;
  kv::check_tensor(s, dst_base, "dst_base");
  kv::check_tensor(s, src_base, "src_base");
  if (src_pages) kv::check_tensor(s, src_pages, "src_pages");
  if (dst_pages) kv::check_tensor(s, dst_pages, "dst_pages");
  // Identity lists index [0, num_pages), so they need that much capacity.
  KV_REQUIRE(src_pages || num_pages <= src_capacity_pages, "src_pages is NULL (identity) but num_pages=", num_pages,
             " > src_capacity_pages=", src_capacity_pages);
  KV_REQUIRE(dst_pages || num_pages <= dst_capacity_pages, "dst_pages is NULL (identity) but num_pages=", num_pages,
             " > dst_capacity_pages=", dst_capacity_pages);
  kv::PageCopyArgs a;
  a.dst_base = dst_base;
  a.dst_capacity_pages = dst_capacity_pages;
  a.src_base = src_base;
  a.src_capacity_pages = src_capacity_pages;
  a.page_bytes = page_bytes;
  a.src_pages = src_pages;
  a.dst_pages = dst_pages;
  a.num_pages = num_pages;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::page_copy(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::page_copy(a);
  KV_API_END
}

kv_status kv_roofline_probe(kv_stream_t stream, uint64_t buffer_bytes, int32_t repetitions, kv_roofline* out) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  KV_REQUIRE_NOT_NULL(out);
  KV_REQUIRE(repetitions >= 0 && repetitions <= 10000, "repetitions=", repetitions, " must be in [0, 10000]");
  KV_REQUIRE(buffer_bytes == 0 || buffer_bytes >= (1u << 20), "buffer_bytes=", buffer_bytes,
             " must be 0 (automatic) or at least 1 MiB");
  if (repetitions == 0) repetitions = 20;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::roofline_probe(s.cuda, buffer_bytes == 0 ? (uint64_t{1} << 31) : buffer_bytes, repetitions, out);
    return KV_STATUS_OK;
  }
#endif
  (void)s;
  kv::cpu::roofline_probe(buffer_bytes == 0 ? (uint64_t{1} << 29) : buffer_bytes, repetitions, out);
  KV_API_END
}

}  // extern "C"
