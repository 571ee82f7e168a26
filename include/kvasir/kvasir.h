/*
 * Kvasir C ABI: the only surface of the native library that Java binds.
 *
 * Conventions (see docs/native.md):
 *  - Every fallible call returns kv_status; KV_STATUS_OK is 0. On failure the calling
 *    thread's kv_last_error() names the call, the argument and the limit that was broken.
 *  - Opaque handles are created by kv_<class>_init(..., &out) and released by the
 *    NULL-safe kv_<class>_free(). Nothing is freed behind the caller's back.
 *  - Callers own every buffer they pass and pass its size. Pointers marked "stream memory"
 *    must be readable (or writable) by the stream's backend: for a CUDA stream that is
 *    device memory or pinned host memory from kv_buffer_init; for a CPU stream any host memory.
 *  - Operations named *_async are ordered on their stream and may return before the work is
 *    done; a CPU stream runs them before returning. Errors found on the device while the work
 *    runs (an index out of range, say) are reported by the next kv_stream_synchronize().
 *  - Sizes are in bytes when the name ends in _bytes, otherwise in elements. Tensors are
 *    dense, row-major, innermost dimension last.
 *
 * Changing a signature, a struct layout or an enum value bumps KV_ABI_VERSION; status values
 * are append-only.
 */
#ifndef KVASIR_KVASIR_H
#define KVASIR_KVASIR_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define KV_API __declspec(dllexport)
#else
#define KV_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ version, status */

/** Version of this header. The Java bindings refuse a library reporting another one. */
#define KV_ABI_VERSION 4

typedef enum kv_status {
  KV_STATUS_OK = 0,
  KV_STATUS_INVALID_ARGUMENT = 1, /* a NULL handle, a bad shape, a value out of range */
  KV_STATUS_OUT_OF_MEMORY = 2,    /* an allocation on some tier failed */
  KV_STATUS_UNSUPPORTED = 3,      /* valid request this build or backend does not do */
  KV_STATUS_NO_DEVICE = 4,        /* backend not compiled in, no driver, or no such device */
  KV_STATUS_DEVICE_ERROR = 5,     /* the CUDA runtime reported an error */
  KV_STATUS_INTERNAL = 6          /* a bug in Kvasir: please report the message */
} kv_status;

/** The ABI version the library was built with (KV_ABI_VERSION of its header). */
KV_API int32_t kv_abi_version(void);

/** Library version and build facts, e.g. "kvasir 0.1.0 (cuda 13.0, sm_90;compute_80)". Static storage. */
KV_API const char* kv_build_info(void);

/** Stable name of a status, e.g. "KV_STATUS_INVALID_ARGUMENT". Never NULL. */
KV_API const char* kv_status_to_string(kv_status status);

/**
 * Message of the last failing call on this thread ("" if none). Valid until the next call
 * into the library on this thread. Successful calls do not clear it.
 */
KV_API const char* kv_last_error(void);

/** Clears this thread's last error message. */
KV_API void kv_clear_last_error(void);

/* ------------------------------------------------------------------ backends, devices */

typedef enum kv_backend {
  KV_BACKEND_CPU = 0, /* always built; one device, the host */
  KV_BACKEND_CUDA = 1 /* built when nvcc was found; devices need a driver */
} kv_backend;

/** 1 if the backend was compiled into this library, 0 otherwise. */
KV_API int32_t kv_backend_compiled(kv_backend backend);

/**
 * Number of usable devices of a backend. CPU: always 1. CUDA: the devices the driver shows.
 * When the backend is not compiled in or no driver is present, *out_count is 0 and the
 * status is KV_STATUS_NO_DEVICE with the reason in kv_last_error().
 */
KV_API kv_status kv_device_count(kv_backend backend, int32_t* out_count);

/** Properties of one device. Strings are NUL-terminated. */
typedef struct kv_device_props {
  int32_t backend;               /* kv_backend */
  int32_t ordinal;               /* device index within the backend */
  char name[128];                /* "NVIDIA H200", or the host CPU model */
  char arch[32];                 /* "sm_90", or the CPU SIMD level in use ("avx2") */
  uint64_t total_memory_bytes;   /* device memory, or host RAM */
  int32_t compute_units;         /* multiprocessors, or logical CPU cores */
  int32_t compute_major;         /* CUDA compute capability; 0 on the CPU */
  int32_t compute_minor;
  int32_t pci_bus_id;            /* -1 on the CPU */
  uint64_t l2_cache_bytes;       /* 0 where unknown */
  uint64_t shared_memory_per_block_bytes; /* opt-in maximum; 0 on the CPU */
} kv_device_props;

KV_API kv_status kv_device_get_props(kv_backend backend, int32_t ordinal, kv_device_props* out);

/** CPU SIMD levels; the library picks the best one the CPU supports at load time. */
typedef enum kv_cpu_isa {
  KV_CPU_ISA_SCALAR = 0,
  KV_CPU_ISA_AVX2 = 1 /* AVX2 + FMA */
} kv_cpu_isa;

/** The SIMD level CPU kernels use now. */
KV_API kv_cpu_isa kv_cpu_isa_active(void);

/**
 * Caps the SIMD level CPU kernels may use (tests run every level; users need not).
 * Asking for more than the CPU supports gives KV_STATUS_UNSUPPORTED.
 */
KV_API kv_status kv_cpu_isa_set_max(kv_cpu_isa isa);

/* ------------------------------------------------------------------ memory tiers */

typedef enum kv_mem_tier {
  KV_MEM_DEVICE = 0,      /* cudaMalloc on CUDA; 256-byte aligned host memory on the CPU backend */
  KV_MEM_PINNED_HOST = 1, /* page-locked, mapped host memory (CUDA kernels read it in place) */
  KV_MEM_HOST = 2         /* plain host memory, 256-byte aligned */
} kv_mem_tier;
#define KV_MEM_TIER_COUNT 3

typedef struct kv_buffer* kv_buffer_t;

/**
 * Allocates size_bytes (> 0) on a tier of a backend's device. On the CPU backend every tier
 * is host memory (there is nothing to pin without a driver); the counters still keep tiers apart.
 * Contents are undefined.
 */
KV_API kv_status kv_buffer_init(kv_backend backend, int32_t device, kv_mem_tier tier,
                                uint64_t size_bytes, kv_buffer_t* out);

/** Frees a buffer (NULL-safe). Work on streams that still uses it must be finished. */
KV_API void kv_buffer_free(kv_buffer_t buffer);

/** Address usable by streams of the buffer's backend (pinned: the host address, mapped for the device). */
KV_API void* kv_buffer_data(kv_buffer_t buffer);
KV_API uint64_t kv_buffer_size_bytes(kv_buffer_t buffer);
KV_API kv_mem_tier kv_buffer_tier(kv_buffer_t buffer);
KV_API kv_backend kv_buffer_backend(kv_buffer_t buffer);

/** Live allocations and their bytes on one tier, over all backends and devices. */
KV_API kv_status kv_mem_live(kv_mem_tier tier, int64_t* out_count, int64_t* out_bytes);

/* ------------------------------------------------------------------ streams, events */

typedef struct kv_stream* kv_stream_t;
typedef struct kv_event* kv_event_t;

/** An ordered queue of work on one device. A CPU stream runs work in the calling thread. */
KV_API kv_status kv_stream_init(kv_backend backend, int32_t device, kv_stream_t* out);
KV_API void kv_stream_free(kv_stream_t stream);
KV_API kv_backend kv_stream_backend(kv_stream_t stream);
KV_API int32_t kv_stream_device(kv_stream_t stream);

/** Waits for all work on the stream, then reports any error the device recorded for it. */
KV_API kv_status kv_stream_synchronize(kv_stream_t stream);

/** An event of the stream's backend and device (CPU: a host timestamp). */
KV_API kv_status kv_event_init(kv_stream_t stream, kv_event_t* out);
KV_API void kv_event_free(kv_event_t event);
KV_API kv_status kv_event_record(kv_event_t event, kv_stream_t stream);
KV_API kv_status kv_event_synchronize(kv_event_t event);
/** Makes later work on stream wait for the event's recorded work. */
KV_API kv_status kv_stream_wait_event(kv_stream_t stream, kv_event_t event);
/** Milliseconds between two recorded, completed events. */
KV_API kv_status kv_event_elapsed_ms(kv_event_t start, kv_event_t end, float* out_ms);

/* ------------------------------------------------------------------ copies */

/**
 * Copies bytes between any two buffers the stream's backend can address (host, pinned,
 * device; direction is inferred). Plain host memory is copied synchronously on CUDA.
 */
KV_API kv_status kv_memcpy_async(kv_stream_t stream, void* dst, const void* src, uint64_t size_bytes);

/** Sets size_bytes of stream memory to the byte value (0..255). */
KV_API kv_status kv_memset_async(kv_stream_t stream, void* dst, int32_t value, uint64_t size_bytes);

/**
 * Batched page copy, the recall primitive: one call moves many scattered fixed-size pages.
 *   for i in [0, num_pages):
 *     dst_base + dst_pages[i] * page_bytes  <-  src_base + src_pages[i] * page_bytes   (page_bytes bytes)
 * src_pages, dst_pages: int64 page indices [num_pages] in stream memory; NULL means i (a
 *   contiguous run), so NULL src_pages is a scatter and NULL dst_pages a gather.
 * src_capacity_pages, dst_capacity_pages: pages in each region; an index outside [0, capacity)
 *   is not copied and fails the call (CPU) or the next kv_stream_synchronize (CUDA).
 * The regions may be device or pinned host memory on CUDA (read in place, no staging), any
 * host memory on the CPU. Destination pages must not overlap each other or any source page.
 * Bit-exact. Aligned 16-byte moves when page_bytes and both bases are multiples of 16.
 */
KV_API kv_status kv_page_copy_async(kv_stream_t stream, void* dst_base, int64_t dst_capacity_pages,
                                    const void* src_base, int64_t src_capacity_pages,
                                    uint64_t page_bytes, const int64_t* src_pages,
                                    const int64_t* dst_pages, int64_t num_pages);

/* ------------------------------------------------------------------ attention states */

typedef enum kv_dtype {
  KV_DTYPE_F32 = 0,
  KV_DTYPE_BF16 = 1,
  KV_DTYPE_F16 = 2 /* checkpoint weights only; kernels take F32 or BF16 */
} kv_dtype;

/*
 * An attention state of a query over a set of keys I is (o, lse):
 *   lse = ln sum_{i in I} exp(s_i),  o = sum_i exp(s_i - lse) v_i,  s_i = sm_scale * q.k_i.
 * lse is fp32, natural log; lse = -inf is the empty state (its o is ignored and may hold
 * anything, NaN included). Merging is exact, associative and commutative:
 *   m = max(l1, l2), w_i = exp(l_i - m), o = (w1 o1 + w2 o2) / (w1 + w2), lse = m + ln(w1 + w2).
 * Merging only empty states gives o = 0, lse = -inf. Arithmetic is fp32 in every dtype.
 * "rows" counts independent states (tokens x heads); head_dim is any positive value.
 */

/** o_out, lse_out [rows][head_dim], [rows] <- merge(a, b). o_out may alias o_a or o_b; lse_out may be NULL. */
KV_API kv_status kv_merge_state_async(kv_stream_t stream, kv_dtype dtype, const void* o_a,
                                      const float* lse_a, const void* o_b, const float* lse_b,
                                      void* o_out, float* lse_out, int64_t rows, int32_t head_dim);

/** (o, lse) <- merge((o, lse), (o_other, lse_other)), in place. */
KV_API kv_status kv_merge_state_inplace_async(kv_stream_t stream, kv_dtype dtype, void* o,
                                              float* lse, const void* o_other,
                                              const float* lse_other, int64_t rows,
                                              int32_t head_dim);

/**
 * N-way merge. o_states [num_states][rows][head_dim] (dtype), lse_states [num_states][rows];
 * o_out [rows][head_dim] (dtype), lse_out [rows] (may be NULL). num_states >= 1.
 */
KV_API kv_status kv_merge_states_async(kv_stream_t stream, kv_dtype dtype, const void* o_states,
                                       const float* lse_states, int32_t num_states, void* o_out,
                                       float* lse_out, int64_t rows, int32_t head_dim);

/* ------------------------------------------------------------------ dense decode attention */

/**
 * Single-query attention over contiguous K/V, GQA-aware, returning the attention state.
 *   q   [batch][num_q_heads][head_dim]                 dtype, stream memory
 *   k,v [batch][kv_len][num_kv_heads][head_dim]        dtype, stream memory
 *   o   [batch][num_q_heads][head_dim]                 dtype, written
 *   lse [batch][num_q_heads]                           fp32 natural log, written (may be NULL)
 * Query head h reads KV head h / (num_q_heads / num_kv_heads). head_dim is 64, 128 or 256;
 * num_q_heads is a multiple of num_kv_heads; sm_scale > 0 and finite (usually 1/sqrt(head_dim)).
 * kv_len = 0 gives the empty state (o = 0, lse = -inf).
 * workspace: scratch in stream memory of at least kv_attention_decode_workspace_bytes() bytes
 * for split-KV on CUDA (partial states merged by the state merge). With less, the kernel
 * splits less (never fails for lack of workspace); NULL and 0 mean no split.
 */
KV_API kv_status kv_attention_decode_async(kv_stream_t stream, kv_dtype dtype, const void* q,
                                           const void* k, const void* v, void* o, float* lse,
                                           int32_t batch, int32_t num_q_heads,
                                           int32_t num_kv_heads, int32_t head_dim, int64_t kv_len,
                                           float sm_scale, void* workspace,
                                           uint64_t workspace_bytes);

/** Workspace that lets kv_attention_decode_async split as much as it wants for this shape. */
KV_API uint64_t kv_attention_decode_workspace_bytes(kv_stream_t stream, int32_t batch,
                                                    int32_t num_q_heads, int32_t head_dim,
                                                    int64_t kv_len);

/* ------------------------------------------------------------------ causal prefill attention */

/**
 * Causal attention of the last q_len positions of each sequence (a prompt, or a prompt chunk
 * after kv_len - q_len cached tokens) over contiguous K/V, GQA-aware, returning the attention
 * state of every query.
 *   q   [batch][q_len][num_q_heads][head_dim]          dtype, stream memory
 *   k,v [batch][kv_len][num_kv_heads][head_dim]        dtype, stream memory
 *   o   [batch][q_len][num_q_heads][head_dim]          dtype, written
 *   lse [batch][q_len][num_q_heads]                    fp32 natural log, written (may be NULL)
 * Query i sits at position kv_len - q_len + i and attends keys [0, kv_len - q_len + i].
 * kv_len >= q_len; q_len = 0 or batch = 0 does nothing. Query head h reads KV head
 * h / (num_q_heads / num_kv_heads). head_dim is 64, 128 or 256; num_q_heads is a multiple of
 * num_kv_heads; sm_scale > 0 and finite (usually 1/sqrt(head_dim)).
 * CUDA: bf16 with head_dim 64 or 128 runs on tensor cores (FlashAttention-2 style, fp32
 * accumulation; the probabilities are rounded to bf16 before they multiply V) and needs q, k,
 * v and o 16-byte aligned. f32, and head_dim 256, run a simple fp32 kernel (one warp per query
 * row and head): correct, not fast. kv_len < 2^31 on CUDA.
 */
KV_API kv_status kv_attention_prefill_async(kv_stream_t stream, kv_dtype dtype, const void* q, const void* k,
                                            const void* v, void* o, float* lse, int32_t batch, int32_t q_len,
                                            int64_t kv_len, int32_t num_q_heads, int32_t num_kv_heads,
                                            int32_t head_dim, float sm_scale);

/* ------------------------------------------------------------------ paged KV cache */

/*
 * The paged KV cache of one layer. A page holds page_tokens consecutive tokens of one sequence;
 * row (page p, KV head h, token t) of K starts at
 *     k_pages + p * page_stride + h * head_stride + t * token_stride     (elements of dtype)
 * and holds head_dim contiguous elements; V alike from v_pages. Kvasir's own layout is
 * head-major, [page][kv_head][token][head_dim] (page_stride = H*P*D, head_stride = P*D,
 * token_stride = D), so one head's part of a page is one contiguous P*D block (a per-head recall
 * moves one block). A pool of single-head pages (per-head page tables, FlexiCache) sets
 * head_stride = 0: a page id then names one head's block. Strides are multiples of 8 elements
 * and the bases 16-byte aligned on CUDA (vector loads); page ids are in [0, num_pages).
 */
typedef struct kv_paged_kv {
  void* k_pages;
  void* v_pages;
  int64_t num_pages;
  int32_t page_tokens;   /* P: 1..256 */
  int32_t num_kv_heads;
  int32_t head_dim;      /* 64, 128 or 256 */
  int32_t reserved;      /* 0 */
  int64_t page_stride;
  int64_t head_stride;   /* 0: single-head pages (each KV head has its own page table) */
  int64_t token_stride;
} kv_paged_kv;

/*
 * Page tables of a batch, in stream memory. Sequence b, KV head h, logical page j (tokens
 * [j*P, (j+1)*P) of the sequence) lives in physical page
 *     pages[b * seq_stride + h * head_stride + j]
 * head_stride = 0 shares one table among the heads (dense policies); a per-head table (eviction,
 * FlexiCache) needs a pool with kv_paged_kv.head_stride = 0. kv_lens[b] is the sequence's token
 * count (all cached, including this step's appended tokens); entries past ceil(kv_len/P) are
 * never read.
 */
typedef struct kv_page_table {
  const int32_t* pages;
  int64_t seq_stride;
  int64_t head_stride;
  const int32_t* kv_lens;  /* [batch] */
} kv_page_table;

/*
 * A page selection (sparse attention): for sequence b and KV head h, the logical pages
 *     indices[(b * num_kv_heads + h) * stride + i],  i < counts[b * num_kv_heads + h]
 * in stream memory. Each index is in [0, ceil(kv_len/P)) and appears at most once; the order is
 * free (the result does not depend on it beyond fp32 rounding). counts <= stride.
 */
typedef struct kv_page_select {
  const int32_t* indices;
  const int32_t* counts;
  int32_t stride;
  int32_t reserved;  /* 0 */
} kv_page_select;

/*
 * Per-page key summaries (Quest): for physical page p and KV head h, 2*head_dim elements of the
 * KV dtype at data + p * page_stride + h * head_stride: the channel-wise minimum of K over the
 * page's valid tokens, then the maximum. Exact (min and max of bf16 values are bf16 values).
 * head_stride = 0 for single-head pools.
 */
typedef struct kv_page_summaries {
  void* data;
  int64_t page_stride;
  int64_t head_stride;
} kv_page_summaries;

/**
 * Writes new K and V rows into pages (the KV append of every step).
 *   k, v   [num_tokens][num_kv_heads][head_dim]   dtype, stream memory
 *   slots  int64, stream memory: token i, head h goes to page slots[i*slots_head_stride+h] / P,
 *          row slots[...] % P. slots_head_stride = 0: one slot per token for every head (shared
 *          tables); num_kv_heads: per-head slots (single-head pools). A negative slot skips the row.
 * A slot outside [0, num_pages*P) fails the call (CPU) or the next kv_stream_synchronize (CUDA).
 * Bit-exact.
 */
KV_API kv_status kv_paged_append_async(kv_stream_t stream, kv_dtype dtype, const void* k, const void* v,
                                       const int64_t* slots, int64_t slots_head_stride, int64_t num_tokens,
                                       const kv_paged_kv* kv);

/**
 * Single-query attention of each sequence over its pages (decode), GQA-aware, returning the
 * attention state; with select, only over the selected pages (sparse decode, Quest).
 *   q    [batch][num_q_heads][head_dim]   dtype, stream memory
 *   o    [batch][num_q_heads][head_dim]   dtype, written
 *   lse  [batch][num_q_heads]             fp32, written (may be NULL)
 * Query head h reads KV head h / (num_q_heads / num_kv_heads). max_kv_len bounds every kv_lens[b]
 * (it sizes the split plan on the host; a larger kv_len is an error). kv_len = 0 (or an empty
 * selection) gives the empty state. fp32 accumulation. workspace as for
 * kv_attention_decode_async: with less than kv_paged_decode_workspace_bytes() the kernel splits
 * less, never fails.
 */
KV_API kv_status kv_paged_decode_async(kv_stream_t stream, kv_dtype dtype, const void* q, const kv_paged_kv* kv,
                                       const kv_page_table* table, const kv_page_select* select, void* o,
                                       float* lse, int32_t batch, int32_t num_q_heads, int32_t max_kv_len,
                                       float sm_scale, void* workspace, uint64_t workspace_bytes);

/** Workspace that lets kv_paged_decode_async split as much as it wants for this shape. */
KV_API uint64_t kv_paged_decode_workspace_bytes(kv_stream_t stream, int32_t batch, int32_t num_q_heads,
                                                int32_t head_dim, int32_t max_kv_len);

/**
 * Causal attention of a batch of query chunks over paged K/V (prefill, chunked prefill after
 * cached or shared-prefix pages), GQA-aware, variable lengths.
 *   q        [q_indptr[batch]][num_q_heads][head_dim]  dtype, stream memory; sequence b owns rows
 *            [q_indptr[b], q_indptr[b+1])
 *   q_indptr [batch + 1] int32, stream memory, non-decreasing from 0
 *   o        like q, written;  lse [q rows][num_q_heads] fp32, written (may be NULL)
 * Query i of sequence b sits at position kv_lens[b] - q_len_b + i (its own K/V already appended)
 * and attends keys [0, that position]. q_len_b <= kv_lens[b]; max_q_len and max_kv_len bound them
 * (the grid is planned on the host). bf16 with head_dim 64 or 128 runs on tensor cores on CUDA
 * (probabilities rounded to bf16 before they multiply V, as in kv_attention_prefill_async) and
 * needs q and o 16-byte aligned. The rows of q, o and lse are counted by q_indptr[batch], which
 * lives in stream memory: the caller sizes them (the host cannot check).
 */
KV_API kv_status kv_paged_prefill_async(kv_stream_t stream, kv_dtype dtype, const void* q, const int32_t* q_indptr,
                                        const kv_paged_kv* kv, const kv_page_table* table, void* o, float* lse,
                                        int32_t batch, int32_t num_q_heads, int32_t max_q_len, int32_t max_kv_len,
                                        float sm_scale);

/**
 * Recomputes the key summaries of the listed physical pages from their first valid_tokens[i]
 * tokens (1..P): called when a page fills, or for the newest page when a policy wants it current.
 *   pages, valid_tokens  [num_update] int32, stream memory
 * Rows of every KV head are summarized (one head for single-head pools).
 */
KV_API kv_status kv_page_summary_update_async(kv_stream_t stream, kv_dtype dtype, const kv_paged_kv* kv,
                                              const int32_t* pages, const int32_t* valid_tokens,
                                              int32_t num_update, const kv_page_summaries* summaries);

/**
 * Quest page selection on the device: for each sequence b and KV head h, the score of logical
 * page j is max over the group's query heads g of sum_d max(q_gd * min_jd, q_gd * max_jd) (an upper
 * bound of q.k over the page); the newest page (j = ceil(kv_len/P) - 1, possibly partial, its
 * summary not read) is always selected, and the top_k - 1 best of the others join it (ties: the
 * lower j). Fewer than top_k pages: all are selected. Writes select->indices (ascending j) and
 * select->counts, which must be writable stream memory with stride >= top_k.
 *   q  [batch][num_q_heads][head_dim] dtype, stream memory
 * workspace: stream memory of at least kv_quest_select_workspace_bytes().
 */
KV_API kv_status kv_quest_select_async(kv_stream_t stream, kv_dtype dtype, const void* q, const kv_paged_kv* kv,
                                       const kv_page_table* table, const kv_page_summaries* summaries,
                                       int32_t batch, int32_t num_q_heads, int32_t max_kv_len, int32_t top_k,
                                       int32_t* indices_out, int32_t* counts_out, int32_t out_stride,
                                       void* workspace, uint64_t workspace_bytes);

/** Scratch kv_quest_select_async needs for this shape. */
KV_API uint64_t kv_quest_select_workspace_bytes(kv_stream_t stream, int32_t batch, int32_t num_kv_heads,
                                                int32_t page_tokens, int32_t max_kv_len);

/* ------------------------------------------------------------------ quantized KV blocks (Kitty, KIVI) */

/*
 * A quantized block holds G = group_tokens consecutive tokens of one sequence and one KV head:
 * keys at 2 bits per channel with asymmetric per-channel scale and min over the G tokens, the
 * boost_channels channels of largest mean |k| at 4 bits (Kitty; 0: KIVI-2), values at 2 bits
 * with per-token scale and min over head_dim. Scales and mins are fp16. The layout of one (block,
 * head) is given by kv_quant_block_layout (byte offsets, each part 16-byte aligned):
 *   k_low    G*D/4 bytes: the low 2 bits of every key code, in the fragment order of
 *            core/quant_kv.h (so the CUDA kernel's reads are 16-byte loads straight into its
 *            matrix-unit operands; the CPU reads the same bytes through the same index math)
 *   k_high   G*NB/4 bytes: the high 2 bits of the boosted channels' codes in the same order, with
 *            the boost slots as columns (NB = 16 when boost_channels <= 16, else boost_channels
 *            rounded up to a multiple of 32; padding slots hold code 0)
 *   k_scale, k_min  fp16 [D]: x = code * scale + min (code < 16 boosted, < 4 otherwise)
 *   boost    uint8 [NB]: slot -> channel of the boosted channels, ascending; 0xFF pads
 *   v_codes  G*D/4 bytes;  v_scale, v_min  fp16 [G]
 * Scales are rounded up and mins down to fp16, so every key and value of the group lies in its
 * grid and the round-trip error is at most scale / 2 per element (values beyond the fp16 range,
 * 65504, are clipped to it).
 */
typedef struct kv_quant_format {
  int32_t group_tokens;    /* G: a multiple of 32 up to 256 (Kitty and KIVI: 128; CUDA decode: 128) */
  int32_t head_dim;        /* D: 64 or 128 */
  int32_t boost_channels;  /* 0..D, a multiple of 8: key channels kept at 4 bits */
  int32_t reserved;        /* 0 */
} kv_quant_format;

typedef struct kv_quant_layout {
  uint64_t k_low, k_high, k_scale, k_min, boost, v_codes, v_scale, v_min; /* byte offsets in a (block, head) */
  uint64_t bytes;                                                          /* total, a multiple of 16 */
} kv_quant_layout;

/** Fills *out with the layout of one (block, head) of the format; refuses a bad format by field. */
KV_API kv_status kv_quant_block_layout(const kv_quant_format* format, kv_quant_layout* out);

/*
 * The quantized blocks of one layer: (block q, KV head h) starts at
 *     blocks + q * block_stride + h * head_stride        (bytes)
 * Both strides are multiples of 16 with head_stride >= the layout's bytes (head-major blocks:
 * head_stride = bytes, block_stride = num_kv_heads * bytes). A sequence's tokens are laid out as:
 * [0, sink_tokens) in bf16 pages, [sink, sink + n*G) in its n quantized blocks, the rest in bf16
 * pages again (the newest tokens); sink_tokens is a multiple of the page size of the pages it is
 * used with, and so is G.
 */
typedef struct kv_quant_kv {
  void* blocks;
  int64_t num_blocks;
  int64_t block_stride;
  int64_t head_stride;
  int32_t num_kv_heads;
  int32_t sink_tokens;
  kv_quant_format format;
} kv_quant_kv;

/* Per sequence b: its quantized groups j < counts[b] live in blocks[b * seq_stride + j]. Stream memory. */
typedef struct kv_quant_table {
  const int32_t* blocks;
  int64_t seq_stride;
  const int32_t* counts;
} kv_quant_table;

/**
 * Quantizes groups of G tokens from bf16 (or fp32) pages into blocks, K and V of every KV head:
 * job i reads the G/P pages src_pages[i * (G/P) + p] (in token order; shared-table pages of the
 * pool src) and writes block dst_blocks[i] of dst. Keys are quantized per channel over the group
 * (boosted channels: the dst format's boost_channels of largest sum |k| over the group, ties to
 * the lower channel), values per token. Deterministic: the CPU and CUDA write the same bytes.
 *   src_pages [num_jobs][G/P], dst_blocks [num_jobs]  int32, stream memory
 */
KV_API kv_status kv_quant_pack_async(kv_stream_t stream, kv_dtype dtype, const kv_paged_kv* src,
                                     const int32_t* src_pages, const int32_t* dst_blocks, int32_t num_jobs,
                                     const kv_quant_kv* dst);

/**
 * Dequantizes blocks back into pages (x = code * scale + min, rounded to dtype): job i reads block
 * src_blocks[i] of src and writes K and V of every head into the G/P pages dst_pages[i * (G/P) + p]
 * of dst (prefill over a quantized prefix; tests).
 */
KV_API kv_status kv_quant_unpack_async(kv_stream_t stream, kv_dtype dtype, const kv_quant_kv* src,
                                       const int32_t* src_blocks, const int32_t* dst_pages, int32_t num_jobs,
                                       const kv_paged_kv* dst);

/**
 * Single-query attention of each sequence over its quantized blocks and its bf16 pages (decode),
 * GQA-aware, one online softmax over both (the logits are never written out), returning the state
 * as kv_paged_decode_async does. Sequence b has kv_lens[b] tokens laid out as kv_quant_kv says;
 * its bf16 pages are table's logical pages that hold tokens outside the quantized span.
 * block_select (may be NULL: every block) restricts the quantized blocks attended: indices are
 * group numbers j < counts[b], per (sequence, KV head), as kv_page_select; bf16 pages are always
 * attended. The scores of quantized keys equal q . (code * scale + min) up to the rounding of
 * q * scale to fp16 on CUDA (fp32 on the CPU); the probabilities times the value scales are rounded
 * to fp16 there too. bf16 models only on CUDA (fp32 or bf16 on the CPU).
 */
KV_API kv_status kv_quant_decode_async(kv_stream_t stream, kv_dtype dtype, const void* q, const kv_paged_kv* kv,
                                       const kv_page_table* table, const kv_quant_kv* qkv,
                                       const kv_quant_table* qtable, const kv_page_select* block_select, void* o,
                                       float* lse, int32_t batch, int32_t num_q_heads, int32_t max_kv_len,
                                       float sm_scale, void* workspace, uint64_t workspace_bytes);

/** Workspace that lets kv_quant_decode_async split as much as it wants for this shape. */
KV_API uint64_t kv_quant_decode_workspace_bytes(kv_stream_t stream, int32_t batch, int32_t num_q_heads,
                                                int32_t head_dim, int32_t max_kv_len);

/* ------------------------------------------------------------------ roofline probe */

/**
 * Ceilings measured on one device, the denominators every benchmark reports against.
 * Bandwidths are bytes per second; a copy counts bytes read plus bytes written.
 * 0 means not measured on this backend (host transfers on the CPU; GEMM until cuBLAS).
 */
typedef struct kv_roofline {
  double read_bytes_per_s;       /* read-only streaming reduction over a large buffer */
  double copy_bytes_per_s;       /* device-to-device copy, read + written */
  double h2d_bytes_per_s;        /* pinned host -> device */
  double d2h_bytes_per_s;        /* device -> pinned host */
  double gemm_bf16_flops_per_s;  /* dense bf16 GEMM rate (CUDA: cuBLAS at 8192^3, fp32 accumulation; 0 without cuBLAS or on the CPU) */
  uint64_t buffer_bytes;         /* working set of each bandwidth test */
  int32_t repetitions;           /* timed repetitions per figure (median taken) */
} kv_roofline;

/**
 * Measures the ceilings of the stream's device. buffer_bytes: working set per test (0 picks
 * a size several times the last-level cache); repetitions: timed runs per figure (0 picks 20).
 */
KV_API kv_status kv_roofline_probe(kv_stream_t stream, uint64_t buffer_bytes, int32_t repetitions,
                                   kv_roofline* out);


/* ------------------------------------------------------------------ model runtime */

/*
 * A decoder-only transformer (Llama / Qwen3 / Qwen2 / Mistral family) resident on one device,
 * and the per-sequence KV cache it runs against. Java plans a step (which sequences, which new
 * tokens); kv_model_step runs the whole batch through every layer in one call, then samples.
 * On the CPU the result of every output element is computed in a fixed order, so a sequence
 * gets the same logits and tokens whether it runs alone or batched with others.
 */

typedef struct kv_model* kv_model_t;
typedef struct kv_kv_cache* kv_kv_cache_t;

typedef enum kv_rope_scaling {
  KV_ROPE_DEFAULT = 0, /* inv_freq_i = theta^(-2i/d) */
  KV_ROPE_LLAMA3 = 1   /* Llama 3.1 frequency-dependent scaling */
} kv_rope_scaling;

typedef struct kv_model_config {
  int32_t vocab_size;
  int32_t hidden_size;
  int32_t intermediate_size;
  int32_t num_layers;
  int32_t num_q_heads;
  int32_t num_kv_heads;
  int32_t head_dim;                    /* 64, 128 or 256 */
  int32_t max_positions;               /* longest sequence the model accepts */
  float rms_norm_eps;
  float rope_theta;
  int32_t rope_scaling;                /* kv_rope_scaling */
  float rope_factor;                   /* llama3: factor, low/high frequency factors, original context */
  float rope_low_freq_factor;
  float rope_high_freq_factor;
  int32_t rope_original_max_positions;
  int32_t qk_norm;                     /* 1: RMSNorm of q and k per head before RoPE (Qwen3) */
  int32_t qkv_bias;                    /* 1: q, k, v projections have biases (Qwen2) */
  int32_t tie_word_embeddings;         /* 1: the LM head is the embedding matrix */
  int32_t weight_dtype;                /* kv_dtype the weights and KV cache are stored in: F32 or BF16 */
} kv_model_config;

/* Weight tensors, row-major as in Hugging Face checkpoints ([out_features][in_features]). */
typedef enum kv_weight_kind {
  KV_WEIGHT_EMBED = 0,       /* [vocab][hidden]                                   (layer -1) */
  KV_WEIGHT_FINAL_NORM = 1,  /* [hidden]                                          (layer -1) */
  KV_WEIGHT_LM_HEAD = 2,     /* [vocab][hidden], absent when tied                 (layer -1) */
  KV_WEIGHT_ATTN_NORM = 3,   /* [hidden]                                 input_layernorm */
  KV_WEIGHT_Q = 4,           /* [num_q_heads * head_dim][hidden]                 q_proj */
  KV_WEIGHT_K = 5,           /* [num_kv_heads * head_dim][hidden]                k_proj */
  KV_WEIGHT_V = 6,           /* [num_kv_heads * head_dim][hidden]                v_proj */
  KV_WEIGHT_O = 7,           /* [hidden][num_q_heads * head_dim]                 o_proj */
  KV_WEIGHT_Q_BIAS = 8,      /* [num_q_heads * head_dim]                   (qkv_bias) */
  KV_WEIGHT_K_BIAS = 9,      /* [num_kv_heads * head_dim]                  (qkv_bias) */
  KV_WEIGHT_V_BIAS = 10,     /* [num_kv_heads * head_dim]                  (qkv_bias) */
  KV_WEIGHT_Q_NORM = 11,     /* [head_dim]                                  (qk_norm) */
  KV_WEIGHT_K_NORM = 12,     /* [head_dim]                                  (qk_norm) */
  KV_WEIGHT_MLP_NORM = 13,   /* [hidden]                        post_attention_layernorm */
  KV_WEIGHT_GATE = 14,       /* [intermediate][hidden]                          gate_proj */
  KV_WEIGHT_UP = 15,         /* [intermediate][hidden]                            up_proj */
  KV_WEIGHT_DOWN = 16        /* [hidden][intermediate]                          down_proj */
} kv_weight_kind;

/** Creates a model on a backend's device with no weights yet. */
KV_API kv_status kv_model_init(kv_backend backend, int32_t device, const kv_model_config* config,
                               kv_model_t* out);
/** Frees the model (NULL-safe). While caches of it are alive the memory is released with the last cache. */
KV_API void kv_model_free(kv_model_t model);

/**
 * Copies one weight tensor from host memory (e.g. a memory-mapped checkpoint) into the model,
 * converting from src_dtype (F32, BF16 or F16) to the model's weight dtype. layer is -1 for
 * the model-level tensors. num_elements must equal the tensor's size for this config.
 */
KV_API kv_status kv_model_set_weight(kv_model_t model, int32_t kind, int32_t layer, int32_t src_dtype,
                                     const void* host_data, int64_t num_elements);

/**
 * Fills every weight with random values generated on the device from seed (synthetic models
 * for performance work): normal-ish values of standard deviation init_std for matrices,
 * 1 + small noise for norms, 0 for biases.
 */
KV_API kv_status kv_model_randomize(kv_model_t model, uint64_t seed, float init_std);

/** KV_STATUS_OK when every weight the config needs has been set (or randomized); otherwise names the first missing one. */
KV_API kv_status kv_model_check_complete(kv_model_t model);

/** Bytes the weights occupy on the device. */
KV_API uint64_t kv_model_weight_bytes(kv_model_t model);

/**
 * A KV cache of num_slots sequences of up to slot_capacity_tokens tokens each, on the model's
 * device, in the model's weight dtype: K and V [layers][slots][capacity][kv_heads][head_dim].
 * Also keeps each slot's token history (for repetition penalties).
 */
KV_API kv_status kv_kv_cache_init(kv_model_t model, int32_t num_slots, int32_t slot_capacity_tokens,
                                  kv_kv_cache_t* out);
KV_API void kv_kv_cache_free(kv_kv_cache_t cache);
KV_API uint64_t kv_kv_cache_bytes(kv_kv_cache_t cache);

/**
 * One forward step for a batch of sequences, then sampling. All arrays are host memory.
 *   slots[s]        cache slot of sequence s (distinct within a step)
 *   start_pos[s]    tokens already cached for s: the position of its first new token
 *   num_new[s]      new tokens of s this step (>= 1; a prompt chunk or one decode token)
 *   token_ids       [sum num_new] the new tokens, sequence after sequence
 * Sampling of the next token at each sequence's last new position (all per sequence, NULL
 * arrays disable the corresponding output):
 *   temperature[s]  0 = greedy (argmax, lowest id on ties)
 *   top_k[s]        0 = off;  top_p[s] 1 = off;  min_p[s] 0 = off;  repetition_penalty[s] 1 = off
 *   seed[s], request_id[s]: randomness is Philox4x32-10 keyed by seed, counter (request_id,
 *                   position of the sampled token), so it does not depend on batching.
 *   sampled[s]      out: the next token
 *   logits          out: [num_seqs][vocab_size] fp32 logits at each sequence's last new position
 * Fails without side effects on the cache when an argument is out of range (a position past
 * the slot capacity or max_positions, a token id outside the vocabulary).
 */
KV_API kv_status kv_model_step(kv_model_t model, kv_kv_cache_t cache, int32_t num_seqs, const int32_t* slots,
                               const int32_t* start_pos, const int32_t* num_new, const int32_t* token_ids,
                               const float* temperature, const int32_t* top_k, const float* top_p,
                               const float* min_p, const float* repetition_penalty, const uint64_t* seed,
                               const uint64_t* request_id, int32_t* sampled, float* logits);

/* ------------------------------------------------------------------ paged model step */

/**
 * A paged KV cache of a model: num_pages pages of page_tokens tokens, K and V of every layer in
 * Kvasir's head-major page layout ([layers][pages][kv_heads][page_tokens][head_dim], model weight
 * dtype), plus each cell's token id (for repetition penalties) and, with key_summaries != 0, the
 * per-page key min/max that Quest scores ([layers][pages][kv_heads][2][head_dim]). Which pages a
 * sequence owns is the caller's business (the Java KvCacheManager): every step names them.
 * Freed with kv_kv_cache_free. CPU and CUDA models; num_pages * page_tokens * num_kv_heads must
 * be below 2^31 (rows are addressed with 32-bit indices on the device).
 */
KV_API kv_status kv_paged_cache_init(kv_model_t model, int32_t num_pages, int32_t page_tokens, int32_t key_summaries,
                                     kv_kv_cache_t* out);

/** Copies whole pages (K, V, token ids and summaries of every layer): dst[i] <- src[i], host arrays. */
KV_API kv_status kv_paged_cache_copy_pages(kv_kv_cache_t cache, const int32_t* src, const int32_t* dst,
                                           int32_t num_copies);

/** How a paged step picks the pages a decode token attends (prefill chunks attend every page). */
typedef enum kv_selection {
  KV_SELECTION_ALL = 0,   /* every page: full KV */
  KV_SELECTION_QUEST = 1  /* Quest: top_k pages per (sequence, KV head) by the key-summary bound, the newest included */
} kv_selection;

typedef struct kv_step_policy {
  int32_t selection;  /* kv_selection */
  int32_t top_k;      /* pages, KV_SELECTION_QUEST */
} kv_step_policy;

/**
 * kv_model_step over a paged cache: sequence s owns the pages page_tables[s * table_stride + j]
 * (host memory; logical page j holds positions [j*P, (j+1)*P)), enough of them for
 * start_pos[s] + num_new[s] tokens, and no page is written by two sequences of one step. A step
 * writes K and V of the new tokens into those pages, refreshes the key summaries of the pages it
 * wrote (caches with summaries), and attends as policy says (NULL: every page) for sequences
 * with num_new = 1 and start_pos > 0; every other sequence attends all its pages. The remaining
 * arguments are those of kv_model_step. With every page attended, the result equals
 * kv_model_step on a slot cache holding the same tokens, bit for bit on the CPU; on CUDA within
 * the rounding of the attention kernels (the paged ones accumulate in a different order).
 */
KV_API kv_status kv_model_step_paged(kv_model_t model, kv_kv_cache_t cache, int32_t num_seqs,
                                     const int32_t* page_tables, int32_t table_stride, const int32_t* start_pos,
                                     const int32_t* num_new, const int32_t* token_ids, const kv_step_policy* policy,
                                     const float* temperature, const int32_t* top_k, const float* top_p,
                                     const float* min_p, const float* repetition_penalty, const uint64_t* seed,
                                     const uint64_t* request_id, int32_t* sampled, float* logits);

/**
 * A paged cache whose older tokens are kept in quantized blocks (Kitty, KIVI-2): the bf16 pages
 * of kv_paged_cache_init plus num_blocks blocks of the format ([layers][blocks][kv_heads]
 * [kv_quant_block_layout bytes]). A sequence keeps tokens [0, sink_tokens) and its newest tokens in
 * pages and the groups of format.group_tokens tokens between them in blocks (kv_quant_kv). Both
 * sink_tokens and group_tokens are multiples of page_tokens; format.head_dim is the model's. CUDA:
 * bf16 models, group_tokens 128. kv_kv_cache_bytes counts the blocks too.
 */
KV_API kv_status kv_paged_cache_init_quant(kv_model_t model, int32_t num_pages, int32_t page_tokens,
                                           int32_t key_summaries, const kv_quant_format* format,
                                           int32_t sink_tokens, int32_t num_blocks, kv_kv_cache_t* out);

/**
 * Dequantizes blocks of a quantized cache back into its pages, every layer (x = code * scale + min,
 * rounded to the model dtype): block blocks[i] goes to the G/P pages pages[i * (G/P) + p]
 * (host arrays). For tools and tests; a sequence whose groups are unpacked may step as bf16 again.
 */
KV_API kv_status kv_paged_cache_unpack_blocks(kv_kv_cache_t cache, const int32_t* blocks, const int32_t* pages,
                                              int32_t num_blocks);

/**
 * kv_model_step_paged over a quantized cache. Sequence s's first quant_before[s] groups are in
 * blocks quant_blocks[s * quant_stride + j] (they hold tokens before start_pos[s]; their pages
 * are neither read nor validated), and after attending the step packs groups
 * [quant_before[s], quant_after[s]) from their pages (still valid in this step) into the blocks
 * the table names (distinct, and no other sequence's); sink + quant_after * G <= start_pos + num_new.
 * The caller frees the packed pages afterwards. Decode tokens attend with kv_quant_decode_async;
 * prefill chunks attend a bf16 copy of the dequantized prefix. Other arguments as in
 * kv_model_step_paged (policy: KV_SELECTION_ALL only).
 */
KV_API kv_status kv_model_step_paged_quant(kv_model_t model, kv_kv_cache_t cache, int32_t num_seqs,
                                           const int32_t* page_tables, int32_t table_stride, const int32_t* start_pos,
                                           const int32_t* num_new, const int32_t* token_ids,
                                           const kv_step_policy* policy, const int32_t* quant_blocks,
                                           int32_t quant_stride, const int32_t* quant_before,
                                           const int32_t* quant_after, const float* temperature,
                                           const int32_t* top_k, const float* top_p, const float* min_p,
                                           const float* repetition_penalty, const uint64_t* seed,
                                           const uint64_t* request_id, int32_t* sampled, float* logits);

/**
 * A tuning or diagnostic option of a model, by name (an unknown name or value is refused):
 *   "cuda_graphs"    1 (default): decode steps of a CUDA model replay a CUDA graph captured the
 *                    second time a batch shape is seen; 0: every step launches its kernels.
 *   "pdl"            1 (default): a CUDA step's kernels use programmatic dependent launch (each
 *                    may start while its predecessor drains; sm_90); 0: plain stream order.
 *   "gemv_max_rows"  CUDA bf16 models: steps of at most this many tokens (0..16, default 8) run
 *                    their projections with Kvasir's weight-streaming GEMV kernel instead of cuBLAS.
 *   "profile"        1: CUDA steps time every stage with events (graphs are not used meanwhile) and
 *                    keep the totals for kv_model_profile_read; 0: stop and clear.
 */
KV_API kv_status kv_model_set_option(kv_model_t model, const char* name, int64_t value);

/**
 * The stage totals gathered while "profile" was on, as text: a header line, then one line per
 * (step kind, stage): "decode|prefill <stage> <calls> <total_ms> <launch_ms>" (device time; host
 * time spent enqueueing the stage), and lines "<kind> host_step <steps> <total_ms>" with the host
 * wall time of the same steps. Written NUL-terminated into buf
 * (truncated to capacity; buf may be NULL when capacity is 0); *needed_out (may be NULL) gets the
 * full length plus one. CPU models give an empty table.
 */
KV_API kv_status kv_model_profile_read(kv_model_t model, char* buf, uint64_t capacity, uint64_t* needed_out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KVASIR_KVASIR_H */
