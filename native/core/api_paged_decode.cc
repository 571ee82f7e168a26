// Entry points of the paged KV append and paged decode: every argument the host can see is
// checked here with a message naming it; indices that live in stream memory (slots, page
// ids, kv_lens, selections) are checked by the backend (CPU: before anything is written;
// CUDA: on the device, failing the next kv_stream_synchronize).
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "core/handles.h"
#include "core/paged_args.h"
#include "cpu/paged_decode.h"
#ifdef KV_WITH_CUDA
#include "cuda/paged_decode.h"
#endif

namespace kv {
namespace {

constexpr int64_t kMaxElements = int64_t{1} << 48;  // guards size arithmetic against overflow

PageSelect check_page_select(const kv_stream& s, const kv_page_select* select) {
  PageSelect out;
  if (!select) return out;
  KV_REQUIRE(select->indices != nullptr, "select.indices is NULL (pass select = NULL to attend every page)");
  check_kv_tensor(s, select->indices, "select.indices");
  check_kv_tensor(s, select->counts, "select.counts");
  KV_REQUIRE(select->stride > 0, "select.stride=", select->stride, " must be > 0");
  KV_REQUIRE(select->reserved == 0, "select.reserved=", select->reserved, " must be 0");
  out.indices = select->indices;
  out.counts = select->counts;
  out.stride = select->stride;
  return out;
}

}  // namespace
}  // namespace kv

extern "C" {

kv_status kv_paged_append_async(kv_stream_t stream, kv_dtype dtype, const void* k, const void* v, const int64_t* slots,
                                int64_t slots_head_stride, int64_t num_tokens, const kv_paged_kv* kv) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  kv::PagedKv pkv = kv::check_paged_kv(s, dtype, kv);
  KV_REQUIRE(num_tokens >= 0, "num_tokens=", num_tokens, " must be >= 0");
  KV_REQUIRE(num_tokens <= kv::kMaxElements / (static_cast<int64_t>(pkv.num_kv_heads) * pkv.head_dim),
             "num_tokens * num_kv_heads * head_dim is too large");
  KV_REQUIRE(slots_head_stride == 0 || slots_head_stride == pkv.num_kv_heads, "slots_head_stride=",
             slots_head_stride, " must be 0 (one slot per token) or kv.num_kv_heads=", pkv.num_kv_heads,
             " (per-head slots)");
  KV_REQUIRE(!(slots_head_stride == 0 && pkv.head_stride == 0 && pkv.num_kv_heads > 1),
             "slots_head_stride=0 with single-head pages (kv.head_stride=0) would write all ", pkv.num_kv_heads,
             " KV heads into the same row; pass per-head slots (slots_head_stride = num_kv_heads)");
  if (num_tokens == 0) return KV_STATUS_OK;
  kv::check_kv_tensor(s, k, "k");
  kv::check_kv_tensor(s, v, "v");
  kv::check_kv_tensor(s, slots, "slots");
  kv::PagedAppendArgs a;
  a.dtype = dtype;
  a.k = k;
  a.v = v;
  a.slots = slots;
  a.slots_head_stride = slots_head_stride;
  a.num_tokens = num_tokens;
  a.kv = pkv;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::paged_append(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::paged_append(a);
  KV_API_END
}

kv_status kv_paged_decode_async(kv_stream_t stream, kv_dtype dtype, const void* q, const kv_paged_kv* kv,
                                const kv_page_table* table, const kv_page_select* select, void* o, float* lse,
                                int32_t batch, int32_t num_q_heads, int32_t max_kv_len, float sm_scale,
                                void* workspace, uint64_t workspace_bytes) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  kv::PagedKv pkv = kv::check_paged_kv(s, dtype, kv);
  kv::check_heads(num_q_heads, pkv);
  KV_REQUIRE(batch >= 0, "batch=", batch, " must be >= 0");
  KV_REQUIRE(max_kv_len >= 0, "max_kv_len=", max_kv_len, " must be >= 0");
  KV_REQUIRE(std::isfinite(sm_scale) && sm_scale > 0.f, "sm_scale=", sm_scale, " must be finite and > 0");
  KV_REQUIRE(static_cast<int64_t>(batch) * num_q_heads <= kv::kMaxElements / pkv.head_dim,
             "batch * num_q_heads * head_dim is too large");
  if (batch == 0) return KV_STATUS_OK;
  kv::PageTable pt = kv::check_page_table(s, table, pkv);
  kv::PageSelect sel = kv::check_page_select(s, select);
  kv::check_kv_tensor(s, q, "q");
  kv::check_kv_tensor(s, o, "o");
  if (lse) kv::check_kv_tensor(s, lse, "lse");
  if (workspace_bytes > 0) kv::check_kv_tensor(s, workspace, "workspace");
  kv::PagedDecodeArgs a;
  a.dtype = dtype;
  a.q = q;
  a.kv = pkv;
  a.table = pt;
  a.select = sel;
  a.o = o;
  a.lse = lse;
  a.batch = batch;
  a.num_q_heads = num_q_heads;
  a.max_kv_len = max_kv_len;
  a.sm_scale = sm_scale;
  a.workspace = workspace;
  a.workspace_bytes = workspace ? workspace_bytes : 0;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::paged_decode(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::paged_decode(a);
  KV_API_END
}

uint64_t kv_paged_decode_workspace_bytes(kv_stream_t stream, int32_t batch, int32_t num_q_heads, int32_t head_dim,
                                         int32_t max_kv_len) {
  if (!stream || batch <= 0 || num_q_heads <= 0 || head_dim <= 0 || max_kv_len <= 0) return 0;
#ifdef KV_WITH_CUDA
  if (stream->backend == KV_BACKEND_CUDA) {
    try {
      return kv::cuda::paged_decode_workspace_bytes(stream->device, batch, num_q_heads, head_dim, max_kv_len);
    } catch (...) {
      return 0;
    }
  }
#endif
  return 0;  // the CPU backend keeps its own scratch
}

}  // extern "C"
