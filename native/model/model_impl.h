// The structs behind kv_model_t and kv_kv_cache_t, and the backend entry points of a step.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/quant_kv.h"
#include "kvasir/kvasir.h"

namespace kv::model {

// One weight on the model's device. Matrices are stored in the model's weight dtype; norms and
// biases in fp32 (they are small, and fp32 holds every bf16/f16 checkpoint value exactly).
struct Tensor {
  void* data = nullptr;
  int64_t rows = 0, cols = 0;  // cols = 1 for vectors
  kv_dtype dtype = KV_DTYPE_F32;
  uint64_t bytes() const { return static_cast<uint64_t>(rows * cols) * (dtype == KV_DTYPE_BF16 ? 2 : 4); }
};

// Per layer. q, k, v share one matrix (rows: q heads, then k heads, then v heads) and gate, up
// another (gate rows, then up rows), so each projection is one matrix product.
struct Layer {
  Tensor attn_norm, qkv, qkv_bias, q_norm, k_norm, o, mlp_norm, gate_up, down;
};

// Everything a step needs per sequence, validated.
struct StepBatch {
  int32_t num_seqs = 0;
  int64_t num_tokens = 0;
  const int32_t* slots = nullptr;        // slot caches
  const int32_t* page_tables = nullptr;  // paged caches: [num_seqs][table_stride]
  int32_t table_stride = 0;
  int32_t selection = KV_SELECTION_ALL;  // paged caches: decode page selection
  int32_t select_top_k = 0;
  // Quantized caches: groups [0, quant_before[s]) are in blocks quant_blocks[s * quant_stride + j];
  // the step packs [quant_before[s], quant_after[s]) after attention. Null: nothing quantized.
  const int32_t* quant_blocks = nullptr;
  int32_t quant_stride = 0;
  const int32_t* quant_before = nullptr;
  const int32_t* quant_after = nullptr;
  const int32_t* start_pos = nullptr;
  const int32_t* num_new = nullptr;
  const int32_t* token_ids = nullptr;
  std::vector<int64_t> token_offset;  // [num_seqs + 1] prefix sums of num_new
  const float* temperature = nullptr;
  const int32_t* top_k = nullptr;
  const float* top_p = nullptr;
  const float* min_p = nullptr;
  const float* repetition_penalty = nullptr;
  const uint64_t* seed = nullptr;
  const uint64_t* request_id = nullptr;
  int32_t* sampled = nullptr;
  float* logits = nullptr;
};

}  // namespace kv::model

namespace kv::model::cuda {
struct Context;
}

struct kv_model {
  kv_backend backend;
  int32_t device;
  kv_model_config cfg;
  kv_dtype wdtype;
  kv::model::Tensor embed, final_norm, lm_head;
  std::vector<kv::model::Layer> layers;
  std::vector<float> inv_freq;                // [head_dim / 2]
  std::set<std::pair<int, int>> weights_set;  // (kind, layer) pairs copied in
  bool randomized = false;
  kv::model::cuda::Context* cuda = nullptr;   // CUDA models: stream, cuBLAS, step workspace
  float* device_inv_freq = nullptr;           // CUDA models: inv_freq on the device
  int live_caches = 0;                        // caches pointing at this model
  // Options (kv_model_set_option); they tune CUDA steps and never change what a step computes
  // beyond rounding.
  bool cuda_graphs = true;
  bool pdl = true;  // programmatic dependent launch between a CUDA step's kernels
  int32_t gemv_max_rows = 8;
  bool profile = false;
  bool released = false;                      // kv_model_free ran while caches were alive
};

struct kv_kv_cache {
  kv_model* model;
  uint64_t serial = 0;          // unique per cache for the process: keys captured CUDA graphs
  int32_t num_slots;
  int32_t capacity;             // tokens per slot
  void* k = nullptr;            // slots: [layers][slots][capacity][kv_heads][head_dim], model weight dtype
  void* v = nullptr;            // pages: [layers][pages][kv_heads][page_tokens][head_dim]
  uint64_t kv_bytes = 0;        // bytes of k (and of v)
  std::vector<int32_t> tokens;  // [slots][capacity] or [pages][page_tokens]: history for repetition penalties (CPU)
  // Paged caches (kv_paged_cache_init); num_slots and capacity are 0 then.
  bool paged = false;
  int32_t num_pages = 0;
  int32_t page_tokens = 0;
  void* summaries = nullptr;    // [layers][pages][kv_heads][2][head_dim] key min then max, weight dtype (may be null)
  uint64_t summary_bytes = 0;
  int32_t* device_history = nullptr;  // the same on the device (CUDA models)
  // Quantized caches (kv_paged_cache_init_quant): [layers][num_qblocks][kv_heads][qlayout.bytes].
  void* qblocks = nullptr;
  uint64_t qblock_bytes = 0;      // all layers
  int32_t num_qblocks = 0;
  int32_t qsink = 0;
  kv_quant_format qformat{};
  kv::quant::Layout qlayout{};
  bool quant() const { return qblocks != nullptr; }
  int64_t qlayer_bytes() const { return static_cast<int64_t>(num_qblocks) * model_kv_heads * static_cast<int64_t>(qlayout.bytes); }
  int32_t model_kv_heads = 0;
};

namespace kv::model {

// Elements of one K (or V) row of one token: kv_heads * head_dim.
inline int64_t kv_row_elems(const kv_model_config& c) { return static_cast<int64_t>(c.num_kv_heads) * c.head_dim; }

// The CPU step (step_cpu.cc) and its sampler (sample_cpu.cc).
void step_cpu(kv_model& m, kv_kv_cache& cache, const StepBatch& b);
int32_t sample_cpu(float* logits, int32_t vocab, float temperature, int32_t top_k, float top_p, float min_p,
                   float repetition_penalty, const int32_t* history, int64_t history_len, uint64_t seed,
                   uint64_t request_id, uint64_t position);

}  // namespace kv::model
