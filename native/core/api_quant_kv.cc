// Entry points of the quantized-KV operations (Kitty, KIVI-2): every argument the host can see is
// checked here with a message naming it; indices in stream memory (page and block ids, counts,
// kv_lens, selections) are checked by the backend (CPU: before anything is written; CUDA: on the
// device, failing the next kv_stream_synchronize).
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "core/handles.h"
#include "core/quant_args.h"
#include "cpu/quant_kv.h"
#ifdef KV_WITH_CUDA
#include "cuda/quant_kv.h"
#endif

namespace kv {

quant::Layout check_quant_format(const kv_quant_format* f, const char* what) {
  if (!f) fail(KV_STATUS_INVALID_ARGUMENT, what, " is NULL");
  KV_REQUIRE(f->group_tokens >= 32 && f->group_tokens <= 256 && f->group_tokens % 32 == 0, what,
             ".group_tokens=", f->group_tokens, " must be a multiple of 32 in [32, 256]");
  if (f->head_dim != 64 && f->head_dim != 128)
    fail(KV_STATUS_UNSUPPORTED, what, ".head_dim=", f->head_dim, " is not supported (64 or 128)");
  KV_REQUIRE(f->boost_channels >= 0 && f->boost_channels <= f->head_dim && f->boost_channels % 8 == 0, what,
             ".boost_channels=", f->boost_channels, " must be a multiple of 8 in [0, head_dim=", f->head_dim, "]");
  KV_REQUIRE(f->reserved == 0, what, ".reserved=", f->reserved, " must be 0");
  return quant::layout_of(f->group_tokens, f->head_dim, f->boost_channels);
}

quant::QuantKv check_quant_kv(const kv_stream& s, const kv_quant_kv* qkv, const char* what) {
  if (!qkv) fail(KV_STATUS_INVALID_ARGUMENT, what, " is NULL");
  const quant::Layout layout = check_quant_format(&qkv->format, "qkv.format");
  KV_REQUIRE(qkv->num_kv_heads > 0, what, ".num_kv_heads=", qkv->num_kv_heads, " must be > 0");
  KV_REQUIRE(qkv->num_blocks > 0 && qkv->num_blocks < (int64_t{1} << 31), what, ".num_blocks=", qkv->num_blocks,
             " must be in [1, 2^31)");
  KV_REQUIRE(qkv->head_stride % 16 == 0 && qkv->block_stride % 16 == 0, what, ".head_stride=", qkv->head_stride,
             " and .block_stride=", qkv->block_stride, " must be multiples of 16 bytes");
  KV_REQUIRE(qkv->head_stride >= static_cast<int64_t>(layout.bytes), what, ".head_stride=", qkv->head_stride,
             " is smaller than one (block, head) of the format (", layout.bytes, " bytes)");
  const int64_t block_extent = qkv->head_stride * (qkv->num_kv_heads - 1) + static_cast<int64_t>(layout.bytes);
  KV_REQUIRE(qkv->block_stride >= block_extent, what, ".block_stride=", qkv->block_stride,
             " is smaller than one block's extent (", block_extent, " bytes): blocks would overlap");
  KV_REQUIRE(qkv->block_stride <= (int64_t{1} << 44) / qkv->num_blocks, what, ".num_blocks * block_stride is too large");
  KV_REQUIRE(qkv->sink_tokens >= 0 && qkv->sink_tokens <= (1 << 20), what, ".sink_tokens=", qkv->sink_tokens,
             " must be in [0, 2^20]");
  check_kv_tensor(s, qkv->blocks, "qkv.blocks");
  if (s.backend == KV_BACKEND_CUDA)
    KV_REQUIRE(reinterpret_cast<uintptr_t>(qkv->blocks) % 16 == 0, what, ".blocks must be 16-byte aligned on CUDA");
  quant::QuantKv out;
  out.blocks = qkv->blocks;
  out.num_blocks = qkv->num_blocks;
  out.block_stride = qkv->block_stride;
  out.head_stride = qkv->head_stride;
  out.num_kv_heads = qkv->num_kv_heads;
  out.sink_tokens = qkv->sink_tokens;
  out.group_tokens = qkv->format.group_tokens;
  out.head_dim = qkv->format.head_dim;
  out.boost_channels = qkv->format.boost_channels;
  out.layout = layout;
  return out;
}

namespace {

// The pages and the blocks must describe the same heads and head size, and a group whole pages.
void check_pages_match(const PagedKv& pages, const quant::QuantKv& q, const char* pages_name) {
  KV_REQUIRE(pages.num_kv_heads == q.num_kv_heads, pages_name, ".num_kv_heads=", pages.num_kv_heads,
             " differs from qkv.num_kv_heads=", q.num_kv_heads);
  KV_REQUIRE(pages.head_dim == q.head_dim, pages_name, ".head_dim=", pages.head_dim,
             " differs from qkv.format.head_dim=", q.head_dim);
  KV_REQUIRE(pages.head_stride != 0 || pages.num_kv_heads == 1, pages_name,
             ".head_stride=0 (single-head pages) is not supported by the quantized blocks, which hold every KV head");
  KV_REQUIRE(q.group_tokens % pages.page_tokens == 0, "qkv.format.group_tokens=", q.group_tokens,
             " must be a multiple of ", pages_name, ".page_tokens=", pages.page_tokens);
  KV_REQUIRE(q.sink_tokens % pages.page_tokens == 0, "qkv.sink_tokens=", q.sink_tokens, " must be a multiple of ",
             pages_name, ".page_tokens=", pages.page_tokens);
}

}  // namespace
}  // namespace kv

extern "C" {

kv_status kv_quant_block_layout(const kv_quant_format* format, kv_quant_layout* out) {
  KV_API_BEGIN
  const kv::quant::Layout l = kv::check_quant_format(format);
  KV_REQUIRE(out != nullptr, "out is NULL");
  out->k_low = l.k_low;
  out->k_high = l.k_high;
  out->k_scale = l.k_scale;
  out->k_min = l.k_min;
  out->boost = l.boost;
  out->v_codes = l.v_codes;
  out->v_scale = l.v_scale;
  out->v_min = l.v_min;
  out->bytes = l.bytes;
  KV_API_END
}

kv_status kv_quant_pack_async(kv_stream_t stream, kv_dtype dtype, const kv_paged_kv* src, const int32_t* src_pages,
                              const int32_t* dst_blocks, int32_t num_jobs, const kv_quant_kv* dst) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  kv::PagedKv pkv = kv::check_paged_kv(s, dtype, src, "src");
  kv::quant::QuantKv q = kv::check_quant_kv(s, dst, "dst");
  kv::check_pages_match(pkv, q, "src");
  KV_REQUIRE(num_jobs >= 0, "num_jobs=", num_jobs, " must be >= 0");
  if (num_jobs == 0) return KV_STATUS_OK;
  kv::check_kv_tensor(s, src_pages, "src_pages");
  kv::check_kv_tensor(s, dst_blocks, "dst_blocks");
  kv::QuantPackArgs a;
  a.dtype = dtype;
  a.src = pkv;
  a.src_pages = src_pages;
  a.dst_blocks = dst_blocks;
  a.num_jobs = num_jobs;
  a.dst = q;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::quant_pack(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::quant_pack(a);
  KV_API_END
}

kv_status kv_quant_unpack_async(kv_stream_t stream, kv_dtype dtype, const kv_quant_kv* src, const int32_t* src_blocks,
                                const int32_t* dst_pages, int32_t num_jobs, const kv_paged_kv* dst) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  kv::quant::QuantKv q = kv::check_quant_kv(s, src, "src");
  kv::PagedKv pkv = kv::check_paged_kv(s, dtype, dst, "dst");
  kv::check_pages_match(pkv, q, "dst");
  KV_REQUIRE(num_jobs >= 0, "num_jobs=", num_jobs, " must be >= 0");
  if (num_jobs == 0) return KV_STATUS_OK;
  kv::check_kv_tensor(s, src_blocks, "src_blocks");
  kv::check_kv_tensor(s, dst_pages, "dst_pages");
  kv::QuantUnpackArgs a;
  a.dtype = dtype;
  a.src = q;
  a.src_blocks = src_blocks;
  a.dst_pages = dst_pages;
  a.num_jobs = num_jobs;
  a.dst = pkv;
#ifdef KV_WITH_CUDA
  if (s.backend == KV_BACKEND_CUDA) {
    kv::cuda::quant_unpack(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::quant_unpack(a);
  KV_API_END
}

kv_status kv_quant_decode_async(kv_stream_t stream, kv_dtype dtype, const void* q, const kv_paged_kv* kv,
                                const kv_page_table* table, const kv_quant_kv* qkv, const kv_quant_table* qtable,
                                const kv_page_select* block_select, void* o, float* lse, int32_t batch,
                                int32_t num_q_heads, int32_t max_kv_len, float sm_scale, void* workspace,
                                uint64_t workspace_bytes) {
  KV_API_BEGIN
  auto& s = kv::require_stream(stream);
  kv::check_kv_dtype(dtype);
  kv::PagedKv pkv = kv::check_paged_kv(s, dtype, kv);
  kv::quant::QuantKv qk = kv::check_quant_kv(s, qkv);
  kv::check_pages_match(pkv, qk, "kv");
  kv::check_heads(num_q_heads, pkv);
  KV_REQUIRE(batch >= 0, "batch=", batch, " must be >= 0");
  KV_REQUIRE(max_kv_len >= 0, "max_kv_len=", max_kv_len, " must be >= 0");
  KV_REQUIRE(std::isfinite(sm_scale) && sm_scale > 0.f, "sm_scale=", sm_scale, " must be finite and > 0");
  KV_REQUIRE(static_cast<int64_t>(batch) * num_q_heads <= (int64_t{1} << 40) / pkv.head_dim,
             "batch * num_q_heads * head_dim is too large");
  if (batch == 0) return KV_STATUS_OK;
  kv::PageTable pt = kv::check_page_table(s, table, pkv);
  KV_REQUIRE(pt.head_stride == 0, "table.head_stride=", pt.head_stride,
             " must be 0: the quantized blocks hold every KV head, so the bf16 pages share one table too");
  if (!qtable) kv::fail(KV_STATUS_INVALID_ARGUMENT, "qtable is NULL");
  kv::check_kv_tensor(s, qtable->blocks, "qtable.blocks");
  kv::check_kv_tensor(s, qtable->counts, "qtable.counts");
  KV_REQUIRE(qtable->seq_stride >= 0, "qtable.seq_stride=", qtable->seq_stride, " must be >= 0");
  kv::PageSelect sel;
  if (block_select) {
    KV_REQUIRE(block_select->indices != nullptr, "block_select.indices is NULL (pass NULL to attend every block)");
    kv::check_kv_tensor(s, block_select->indices, "block_select.indices");
    kv::check_kv_tensor(s, block_select->counts, "block_select.counts");
    KV_REQUIRE(block_select->stride > 0, "block_select.stride=", block_select->stride, " must be > 0");
    KV_REQUIRE(block_select->reserved == 0, "block_select.reserved=", block_select->reserved, " must be 0");
    sel.indices = block_select->indices;
    sel.counts = block_select->counts;
    sel.stride = block_select->stride;
  }
  kv::check_kv_tensor(s, q, "q");
  kv::check_kv_tensor(s, o, "o");
  if (lse) kv::check_kv_tensor(s, lse, "lse");
  if (workspace_bytes > 0) kv::check_kv_tensor(s, workspace, "workspace");
  kv::QuantDecodeArgs a;
  a.dtype = dtype;
  a.q = q;
  a.kv = pkv;
  a.table = pt;
  a.qkv = qk;
  a.qtable.blocks = qtable->blocks;
  a.qtable.seq_stride = qtable->seq_stride;
  a.qtable.counts = qtable->counts;
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
    kv::cuda::quant_decode(s.cuda, a);
    return KV_STATUS_OK;
  }
#endif
  kv::cpu::quant_decode(a);
  KV_API_END
}

uint64_t kv_quant_decode_workspace_bytes(kv_stream_t stream, int32_t batch, int32_t num_q_heads, int32_t head_dim,
                                         int32_t max_kv_len) {
  if (!stream || batch <= 0 || num_q_heads <= 0 || head_dim <= 0 || max_kv_len <= 0) return 0;
#ifdef KV_WITH_CUDA
  if (stream->backend == KV_BACKEND_CUDA) {
    try {
      return kv::cuda::quant_decode_workspace_bytes(stream->device, batch, num_q_heads, head_dim, max_kv_len);
    } catch (...) {
      return 0;
    }
  }
#endif
  return 0;  // the CPU backend keeps its own scratch
}

}  // extern "C"
