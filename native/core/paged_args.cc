// Host-side checks shared by the paged KV entry points (core/api_paged_*.cc).
#include "core/paged_args.h"

#include "core/error.h"
#include "core/handles.h"

namespace kv {

void check_stream_memory(const kv_stream& s, const void* ptr, const char* what);  // stream.cc

void check_kv_dtype(kv_dtype dtype) {
  KV_REQUIRE(dtype == KV_DTYPE_F32 || dtype == KV_DTYPE_BF16, "dtype=", static_cast<int>(dtype),
             " is not KV_DTYPE_F32 or KV_DTYPE_BF16");
}

void check_kv_tensor(const kv_stream& s, const void* ptr, const char* what) {
  if (!ptr) fail(KV_STATUS_INVALID_ARGUMENT, what, " is NULL");
  check_stream_memory(s, ptr, what);
}

PagedKv check_paged_kv(const kv_stream& s, kv_dtype dtype, const kv_paged_kv* kv, const char* what) {
  if (!kv) fail(KV_STATUS_INVALID_ARGUMENT, what, " is NULL");
  KV_REQUIRE(kv->page_tokens >= 1 && kv->page_tokens <= 256, what, ".page_tokens=", kv->page_tokens,
             " must be in [1, 256]");
  KV_REQUIRE(kv->num_kv_heads > 0, what, ".num_kv_heads=", kv->num_kv_heads, " must be > 0");
  if (kv->head_dim != 64 && kv->head_dim != 128 && kv->head_dim != 256)
    fail(KV_STATUS_UNSUPPORTED, what, ".head_dim=", kv->head_dim, " is not supported (64, 128 or 256)");
  KV_REQUIRE(kv->reserved == 0, what, ".reserved=", kv->reserved, " must be 0");
  KV_REQUIRE(kv->num_pages > 0 && kv->num_pages < (int64_t{1} << 31), what, ".num_pages=", kv->num_pages,
             " must be in [1, 2^31)");
  KV_REQUIRE(kv->token_stride >= kv->head_dim, what, ".token_stride=", kv->token_stride,
             " must be >= head_dim=", kv->head_dim);
  KV_REQUIRE(kv->head_stride == 0 || kv->head_stride >= kv->head_dim, what, ".head_stride=", kv->head_stride,
             " must be 0 (single-head pages) or >= head_dim=", kv->head_dim);
  const int64_t head_extent = kv->head_stride == 0 ? 0 : kv->head_stride * (kv->num_kv_heads - 1);
  const int64_t page_extent = head_extent + kv->token_stride * (kv->page_tokens - 1) + kv->head_dim;
  KV_REQUIRE(kv->page_stride >= page_extent, what, ".page_stride=", kv->page_stride,
             " is smaller than one page's extent (", page_extent, " elements): pages would overlap");
  KV_REQUIRE(kv->page_stride <= (int64_t{1} << 40) / kv->num_pages, what, ".num_pages * page_stride is too large");
  for (int64_t stride : {kv->page_stride, kv->head_stride, kv->token_stride})
    KV_REQUIRE(stride % 8 == 0, what, " strides must be multiples of 8 elements (page ", kv->page_stride, ", head ",
               kv->head_stride, ", token ", kv->token_stride, ")");
  check_kv_tensor(s, kv->k_pages, "kv.k_pages");
  check_kv_tensor(s, kv->v_pages, "kv.v_pages");
  if (s.backend == KV_BACKEND_CUDA) {
    KV_REQUIRE(reinterpret_cast<uintptr_t>(kv->k_pages) % 16 == 0 && reinterpret_cast<uintptr_t>(kv->v_pages) % 16 == 0,
               what, ".k_pages and .v_pages must be 16-byte aligned on CUDA");
  }
  PagedKv out;
  out.k = kv->k_pages;
  out.v = kv->v_pages;
  out.num_pages = kv->num_pages;
  out.page_tokens = kv->page_tokens;
  out.num_kv_heads = kv->num_kv_heads;
  out.head_dim = kv->head_dim;
  out.page_stride = kv->page_stride;
  out.head_stride = kv->head_stride;
  out.token_stride = kv->token_stride;
  (void)dtype;
  return out;
}

PageTable check_page_table(const kv_stream& s, const kv_page_table* table, const PagedKv& kv, const char* what) {
  if (!table) fail(KV_STATUS_INVALID_ARGUMENT, what, " is NULL");
  check_kv_tensor(s, table->pages, "table.pages");
  check_kv_tensor(s, table->kv_lens, "table.kv_lens");
  KV_REQUIRE(table->seq_stride >= 0 && table->head_stride >= 0, what, ".seq_stride=", table->seq_stride,
             " and .head_stride=", table->head_stride, " must be >= 0");
  KV_REQUIRE(table->head_stride == 0 || kv.head_stride == 0, what, ".head_stride=", table->head_stride,
             " gives each KV head its own table, which needs single-head pages (kv.head_stride = 0, not ",
             kv.head_stride, ")");
  PageTable out;
  out.pages = table->pages;
  out.seq_stride = table->seq_stride;
  out.head_stride = table->head_stride;
  out.kv_lens = table->kv_lens;
  return out;
}

void check_heads(int32_t num_q_heads, const PagedKv& kv) {
  KV_REQUIRE(num_q_heads > 0 && num_q_heads % kv.num_kv_heads == 0, "num_q_heads=", num_q_heads,
             " must be a positive multiple of kv.num_kv_heads=", kv.num_kv_heads);
}

}  // namespace kv
