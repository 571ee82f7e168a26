// The CUDA half of the model runtime (step_cuda.cu), seen from model.cc: plain C++, no CUDA
// types. Only referenced when KV_WITH_CUDA is defined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "model/model_impl.h"

namespace kv::model::cuda {

struct Context;  // the model's stream, cuBLAS handle and step workspace

Context* create_context(int32_t device);
void destroy_context(Context* ctx) noexcept;

// Synchronous host -> device copy of weights (the upload path runs once per model).
void upload(Context* ctx, void* device_dst, const void* host_src, size_t bytes);
void fill_zero(Context* ctx, void* device_dst, size_t bytes);

// Synthetic weights on the device: N(0, std) for matrices, 1 for vectors (norms).
void randomize(Context* ctx, Tensor& t, uint64_t seed, uint64_t stream_id, float init_std);

// Per-slot token history of a CUDA cache (for repetition penalties).
int32_t* alloc_history(Context* ctx, int64_t elements);
void free_history(Context* ctx, int32_t* history) noexcept;

// One step over a slot cache (b.slots) or a paged cache (b.page_tables).
void step(kv_model& m, kv_kv_cache& cache, const StepBatch& b);

// Copies whole pages of a paged cache (every layer's K, V and key summaries, and the token
// history) in stream order; src and dst were validated by kv_paged_cache_copy_pages.
void copy_pages(kv_model& m, kv_kv_cache& cache, const int32_t* src, const int32_t* dst, int32_t num_copies);

// Dequantizes blocks of a quantized cache into its pages, every layer (kv_paged_cache_unpack_blocks;
// validated there), synchronously.
void unpack_blocks(kv_model& m, kv_kv_cache& cache, const int32_t* blocks, const int32_t* pages, int32_t num_blocks);

// Profiling (kv_model_set_option "profile"): start or stop-and-clear, and the text table.
void set_profiling(Context* ctx, bool on);
std::string profile_text(const Context* ctx);

// Drops the CUDA graphs captured for a cache (it is being freed).
void forget_cache(Context* ctx, uint64_t cache_serial) noexcept;

}  // namespace kv::model::cuda
