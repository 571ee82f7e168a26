// Entry points of the Quest operations: key summaries of pages (kv_page_summary_update_async)
// and query-aware page selection (kv_quest_select_async). Every argument is checked here with a
// message naming it; indices that live in stream memory (page ids, valid token counts, kv_lens)
// are checked by the backend: the CPU fails the call, CUDA the next kv_stream_synchronize.
#include <cstdint>

#include "core/error.h"
#include "core/handles.h"
#include "core/paged_args.h"
#include "core/paged_quest_order.h"
#include "cpu/paged_quest.h"
#ifdef KV_WITH_CUDA
#include "cuda/paged_quest.h"
#endif

namespace kv {
namespace {

// Checks kv_page_summaries against the pool: rows of 2*head_dim elements per (page, head) that
// do not overlap, strides in multiples of 8 elements (16-byte rows on CUDA).
PageSummaries check_summaries(const kv_stream& s, const kv_page_summaries* summaries, const PagedKv& kv) {
  if (!summaries) fail(KV_STATUS_INVALID_ARGUMENT, "summaries is NULL");
  check_kv_tensor(s, summaries->data, "summaries.data");
  const int64_t row = 2 * static_cast<int64_t>(kv.head_dim);
  KV_REQUIRE(summaries->page_stride >= 0 && summaries->head_stride >= 0, "summaries.page_stride=",
             summaries->page_stride, " and summaries.head_stride=", summaries->head_stride, " must be >= 0");
  const bool multi_head = kv.head_stride != 0 && kv.num_kv_heads > 1;
  if (kv.head_stride == 0) {
    KV_REQUIRE(summaries->head_stride == 0, "summaries.head_stride=", summaries->head_stride,
               " must be 0 for a pool of single-head pages (kv.head_stride = 0)");
  } else if (multi_head) {
    KV_REQUIRE(summaries->head_stride >= row, "summaries.head_stride=", summaries->head_stride,
               " must be >= 2 * head_dim=", row, " (one row of minima and maxima per KV head)");
  }
  const int64_t heads = multi_head ? kv.num_kv_heads : 1;
  const int64_t extent = (heads - 1) * summaries->head_stride + row;
  KV_REQUIRE(summaries->page_stride >= extent, "summaries.page_stride=", summaries->page_stride,
             " is smaller than one page's summary extent (", extent, " elements): pages would overlap");
  KV_REQUIRE(summaries->page_stride <= (int64_t{1} << 40) / kv.num_pages,
             "kv.num_pages * summaries.page_stride is too large");
  KV_REQUIRE(summaries->page_stride % 8 == 0 && summaries->head_stride % 8 == 0,
             "summaries strides must be multiples of 8 elements (page ", summaries->page_stride, ", head ",
             summaries->head_stride, ")");
  if (s.backend == KV_BACKEND_CUDA)
    KV_REQUIRE(reinterpret_cast<uintptr_t>(summaries->data) % 16 == 0, "summaries.data must be 16-byte aligned on CUDA");
  PageSummaries out;
  out.data = summaries->data;
  out.page_stride = summaries->page_stride;
  out.head_stride = summaries->head_stride;
  return out;
}

int64_t max_pages_of(int32_t max_kv_len, int32_t page_tokens) {
  return (static_cast<int64_t>(max_kv_len) + page_tokens - 1) / page_tokens;
}

}  // namespace
}  // namespace kv

extern "C" {

kv_status kv_page_summary_update_async(kv_stream_t stream, kv_dtype dtype, const kv_paged_kv* kv,
                                       const int32_t* pages, const int32_t* valid_tokens, int32_t num_update,
                                       const kv_page_summaries* summaries) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  const kv::PagedKv pkv = kv::check_paged_kv(s, dtype, kv);
  KV_REQUIRE(num_update >= 0, "num_update=", num_update, " must be >= 0");
  const kv::PageSummaries sums = kv::check_summaries(s, summaries, pkv);
  if (num_update == 0) return KV_STATUS_OK;
  kv::check_kv_tensor(s, pages, "pages");
  kv::check_kv_tensor(s, valid_tokens, "valid_tokens");
  kv::PageSummaryArgs a;
  a.dtype = dtype;
  a.kv = pkv;
  a.pages = pages;
  a.valid_tokens = valid_tokens;
  a.num_update = num_update;
  a.summaries = sums;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::page_summary_update(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::page_summary_update(a);
  KV_API_END
}

kv_status kv_quest_select_async(kv_stream_t stream, kv_dtype dtype, const void* q, const kv_paged_kv* kv,
                                const kv_page_table* table, const kv_page_summaries* summaries, int32_t batch,
                                int32_t num_q_heads, int32_t max_kv_len, int32_t top_k, int32_t* indices_out,
                                int32_t* counts_out, int32_t out_stride, void* workspace, uint64_t workspace_bytes) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  const kv::PagedKv pkv = kv::check_paged_kv(s, dtype, kv);
  const kv::PageTable ptable = kv::check_page_table(s, table, pkv);
  const kv::PageSummaries sums = kv::check_summaries(s, summaries, pkv);
  kv::check_heads(num_q_heads, pkv);
  KV_REQUIRE(batch >= 0, "batch=", batch, " must be >= 0");
  KV_REQUIRE(max_kv_len >= 0, "max_kv_len=", max_kv_len, " must be >= 0");
  KV_REQUIRE(top_k >= 1, "top_k=", top_k, " must be >= 1");
  KV_REQUIRE(out_stride >= top_k, "out_stride=", out_stride, " must be >= top_k=", top_k);
  const int64_t max_pages = kv::max_pages_of(max_kv_len, pkv.page_tokens);
  KV_REQUIRE(static_cast<int64_t>(batch) * pkv.num_kv_heads <= (int64_t{1} << 31) - 1 &&
                 static_cast<int64_t>(batch) * pkv.num_kv_heads * max_pages <= (int64_t{1} << 40),
             "batch * kv.num_kv_heads * ceil(max_kv_len / page_tokens) is too large");
  if (batch == 0) return KV_STATUS_OK;
  kv::check_kv_tensor(s, q, "q");
  kv::check_kv_tensor(s, indices_out, "indices_out");
  kv::check_kv_tensor(s, counts_out, "counts_out");
  if (s.backend == KV_BACKEND_CUDA)
    KV_REQUIRE(reinterpret_cast<uintptr_t>(q) % 16 == 0, "q must be 16-byte aligned on CUDA");
  const uint64_t needed = kv_quest_select_workspace_bytes(stream, batch, pkv.num_kv_heads, pkv.page_tokens, max_kv_len);
  KV_REQUIRE(workspace_bytes >= needed, "workspace_bytes=", workspace_bytes, " is less than the ", needed,
             " bytes kv_quest_select_workspace_bytes() asks for this shape");
  if (needed > 0) {
    kv::check_kv_tensor(s, workspace, "workspace");
    KV_REQUIRE(reinterpret_cast<uintptr_t>(workspace) % 16 == 0, "workspace must be 16-byte aligned");
  }
  kv::QuestSelectArgs a;
  a.dtype = dtype;
  a.q = q;
  a.kv = pkv;
  a.table = ptable;
  a.summaries = sums;
  a.batch = batch;
  a.num_q_heads = num_q_heads;
  a.max_kv_len = max_kv_len;
  a.top_k = top_k;
  a.indices_out = indices_out;
  a.counts_out = counts_out;
  a.out_stride = out_stride;
  a.workspace = workspace;
  a.workspace_bytes = workspace_bytes;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::quest_select(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::quest_select(a);
  KV_API_END
}

uint64_t kv_quest_select_workspace_bytes(kv_stream_t stream, int32_t batch, int32_t num_kv_heads,
                                         int32_t page_tokens, int32_t max_kv_len) {
  if (!stream || batch <= 0 || num_kv_heads <= 0 || page_tokens <= 0 || max_kv_len <= 0) return 0;
  if (stream->backend != KV_BACKEND_CUDA) return 0;  // the CPU backend keeps its own scratch
  return kv::quest_select_workspace_bytes_for(batch, num_kv_heads, kv::max_pages_of(max_kv_len, page_tokens));
}

}  // extern "C"
