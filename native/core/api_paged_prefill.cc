// ABI entry point of the varlen causal prefill over paged K/V (kv_paged_prefill_async): every
// argument that the host can see is checked here, with a message naming it; what lives in
// stream memory (q_indptr, kv_lens, page ids) is checked by the backend (the CPU fails the
// call before computing anything; CUDA records the first bad value for kv_stream_synchronize).
#include <cmath>

#include "core/error.h"
#include "core/handles.h"
#include "core/paged_args.h"
#include "cpu/paged_prefill.h"
#ifdef KV_WITH_CUDA
#include "cuda/paged_prefill.h"
#endif

extern "C" {

kv_status kv_paged_prefill_async(kv_stream_t stream, kv_dtype dtype, const void* q, const int32_t* q_indptr,
                                 const kv_paged_kv* kv, const kv_page_table* table, void* o, float* lse, int32_t batch,
                                 int32_t num_q_heads, int32_t max_q_len, int32_t max_kv_len, float sm_scale) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  KV_REQUIRE(batch >= 0, "batch=", batch, " must be >= 0");
  const kv::PagedKv pkv = kv::check_paged_kv(s, dtype, kv, "kv");
  const kv::PageTable ptable = kv::check_page_table(s, table, pkv, "table");
  kv::check_heads(num_q_heads, pkv);
  KV_REQUIRE(max_q_len >= 0, "max_q_len=", max_q_len, " must be >= 0");
  KV_REQUIRE(max_kv_len >= 0, "max_kv_len=", max_kv_len, " must be >= 0");
  KV_REQUIRE(std::isfinite(sm_scale) && sm_scale > 0.f, "sm_scale=", sm_scale, " must be finite and > 0");
  // Rows index q, o and lse as int32 (q_indptr); keep their element counts far from overflow.
  KV_REQUIRE(static_cast<int64_t>(batch) * max_q_len < (int64_t{1} << 31), "batch * max_q_len = ",
             static_cast<int64_t>(batch) * max_q_len, " exceeds 2^31 - 1 query rows");
  if (batch == 0 || max_q_len == 0) return KV_STATUS_OK;  // no query row can exist
  kv::check_kv_tensor(s, q_indptr, "q_indptr");
  kv::check_kv_tensor(s, q, "q");
  kv::check_kv_tensor(s, o, "o");
  if (lse) kv::check_kv_tensor(s, lse, "lse");
  kv::PagedPrefillArgs a;
  a.dtype = dtype;
  a.q = q;
  a.q_indptr = q_indptr;
  a.kv = pkv;
  a.table = ptable;
  a.o = o;
  a.lse = lse;
  a.batch = batch;
  a.num_q_heads = num_q_heads;
  a.max_q_len = max_q_len;
  a.max_kv_len = max_kv_len;
  a.sm_scale = sm_scale;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::paged_prefill(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::paged_prefill(a);
  KV_API_END
}

}  // extern "C"
