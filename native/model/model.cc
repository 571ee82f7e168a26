// The model runtime's ABI entry points: configuration and weight checks, weight upload and
// conversion, synthetic weights, the KV cache, and step validation before a backend runs it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <set>
#include <string>

#include "core/error.h"
#include "core/handles.h"
#include "cpu/bf16.h"
#include "cpu/parallel.h"
#include "core/quant_args.h"
#include "cpu/quant_kv.h"
#include "model/model_impl.h"
#include "model/philox.h"
#include "model/rope.h"
#ifdef KV_WITH_CUDA
#include "model/model_cuda.h"
#endif

namespace kv {
void check_device(kv_backend backend, int32_t device);  // core/device.cc
}

namespace kv::model {
namespace {

using kv::fail;

const char* kind_name(int kind) {
  switch (kind) {
    case KV_WEIGHT_EMBED: return "model.embed_tokens.weight";
    case KV_WEIGHT_FINAL_NORM: return "model.norm.weight";
    case KV_WEIGHT_LM_HEAD: return "lm_head.weight";
    case KV_WEIGHT_ATTN_NORM: return "input_layernorm.weight";
    case KV_WEIGHT_Q: return "self_attn.q_proj.weight";
    case KV_WEIGHT_K: return "self_attn.k_proj.weight";
    case KV_WEIGHT_V: return "self_attn.v_proj.weight";
    case KV_WEIGHT_O: return "self_attn.o_proj.weight";
    case KV_WEIGHT_Q_BIAS: return "self_attn.q_proj.bias";
    case KV_WEIGHT_K_BIAS: return "self_attn.k_proj.bias";
    case KV_WEIGHT_V_BIAS: return "self_attn.v_proj.bias";
    case KV_WEIGHT_Q_NORM: return "self_attn.q_norm.weight";
    case KV_WEIGHT_K_NORM: return "self_attn.k_norm.weight";
    case KV_WEIGHT_MLP_NORM: return "post_attention_layernorm.weight";
    case KV_WEIGHT_GATE: return "mlp.gate_proj.weight";
    case KV_WEIGHT_UP: return "mlp.up_proj.weight";
    case KV_WEIGHT_DOWN: return "mlp.down_proj.weight";
  }
  return "unknown";
}

// The Hugging Face name of a weight, for messages.
std::string hf_name(int kind, int layer) {
  if (layer < 0) return kind_name(kind);
  return "model.layers." + std::to_string(layer) + "." + kind_name(kind);
}

bool is_model_level(int kind) { return kind <= KV_WEIGHT_LM_HEAD; }

// The weights a configuration needs, as (kind, layer) pairs.
std::vector<std::pair<int, int>> required_weights(const kv_model_config& c) {
  std::vector<std::pair<int, int>> out{{KV_WEIGHT_EMBED, -1}, {KV_WEIGHT_FINAL_NORM, -1}};
  if (!c.tie_word_embeddings) out.push_back({KV_WEIGHT_LM_HEAD, -1});
  for (int l = 0; l < c.num_layers; ++l) {
    for (int k : {KV_WEIGHT_ATTN_NORM, KV_WEIGHT_Q, KV_WEIGHT_K, KV_WEIGHT_V, KV_WEIGHT_O, KV_WEIGHT_MLP_NORM,
                  KV_WEIGHT_GATE, KV_WEIGHT_UP, KV_WEIGHT_DOWN})
      out.push_back({k, l});
    if (c.qkv_bias)
      for (int k : {KV_WEIGHT_Q_BIAS, KV_WEIGHT_K_BIAS, KV_WEIGHT_V_BIAS}) out.push_back({k, l});
    if (c.qk_norm)
      for (int k : {KV_WEIGHT_Q_NORM, KV_WEIGHT_K_NORM}) out.push_back({k, l});
  }
  return out;
}

void check_config(const kv_model_config& c) {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) fail(KV_STATUS_INVALID_ARGUMENT, "config.", name, "=", v, " must be > 0");
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_layers, "num_layers");
  positive(c.num_q_heads, "num_q_heads");
  positive(c.num_kv_heads, "num_kv_heads");
  positive(c.max_positions, "max_positions");
  KV_REQUIRE(c.num_q_heads % c.num_kv_heads == 0, "config.num_q_heads=", c.num_q_heads,
             " is not a multiple of num_kv_heads=", c.num_kv_heads);
  if (c.head_dim != 64 && c.head_dim != 128 && c.head_dim != 256)
    fail(KV_STATUS_UNSUPPORTED, "config.head_dim=", c.head_dim, " is not supported (64, 128 or 256)");
  KV_REQUIRE(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0, "config.rms_norm_eps=", c.rms_norm_eps,
             " must be finite and > 0");
  KV_REQUIRE(std::isfinite(c.rope_theta) && c.rope_theta > 0, "config.rope_theta=", c.rope_theta,
             " must be finite and > 0");
  if (c.rope_scaling == KV_ROPE_LLAMA3) {
    KV_REQUIRE(c.rope_factor >= 1.f, "config.rope_factor=", c.rope_factor, " must be >= 1 for llama3 scaling");
    KV_REQUIRE(c.rope_low_freq_factor > 0 && c.rope_high_freq_factor > c.rope_low_freq_factor,
               "config.rope_low_freq_factor=", c.rope_low_freq_factor, " and rope_high_freq_factor=",
               c.rope_high_freq_factor, " must satisfy 0 < low < high");
    positive(c.rope_original_max_positions, "rope_original_max_positions");
  } else if (c.rope_scaling != KV_ROPE_DEFAULT) {
    fail(KV_STATUS_UNSUPPORTED, "config.rope_scaling=", c.rope_scaling, " is not supported (default or llama3)");
  }
  KV_REQUIRE(c.weight_dtype == KV_DTYPE_F32 || c.weight_dtype == KV_DTYPE_BF16, "config.weight_dtype=",
             c.weight_dtype, " must be KV_DTYPE_F32 or KV_DTYPE_BF16");
}

// Allocates one tensor on the model's device.
void alloc(kv_model& m, Tensor& t, int64_t rows, int64_t cols, kv_dtype dtype) {
  t.rows = rows;
  t.cols = cols;
  t.dtype = dtype;
  t.data = kv::mem_allocate(m.backend, m.device, KV_MEM_DEVICE, t.bytes());
}

void release(kv_model& m, Tensor& t) {
  kv::mem_release(m.backend, m.device, KV_MEM_DEVICE, t.data, t.bytes());
  t.data = nullptr;
}

template <typename F>
void for_each_tensor(kv_model& m, F&& f) {
  f(m.embed);
  f(m.final_norm);
  f(m.lm_head);
  for (Layer& l : m.layers)
    for (Tensor* t : {&l.attn_norm, &l.qkv, &l.qkv_bias, &l.q_norm, &l.k_norm, &l.o, &l.mlp_norm, &l.gate_up, &l.down})
      f(*t);
}

// IEEE binary16 to float, subnormals, infinities and NaN included.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    int shift = 0;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      ++shift;
    }
    bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Element i of a checkpoint tensor. Safetensors data offsets carry no alignment guarantee, so
// elements are read with memcpy, never through a typed pointer.
float read_source(const void* src, int src_dtype, int64_t i) {
  const char* p = static_cast<const char*>(src);
  if (src_dtype == KV_DTYPE_F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return src_dtype == KV_DTYPE_BF16 ? bf16_to_float(h) : half_to_float(h);
}

// Copies n source elements into tensor t starting at element offset, converting.
void write_converted(Tensor& t, int64_t offset, const void* src, int src_dtype, int64_t n) {
  kv::cpu::parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    if (t.dtype == KV_DTYPE_BF16) {
      uint16_t* dst = static_cast<uint16_t*>(t.data) + offset;
      if (src_dtype == KV_DTYPE_BF16) {
        std::memcpy(dst + b, static_cast<const char*>(src) + 2 * b, static_cast<size_t>(e - b) * 2);
      } else {
        for (int64_t i = b; i < e; ++i) dst[i] = float_to_bf16(read_source(src, src_dtype, i));
      }
    } else {
      float* dst = static_cast<float*>(t.data) + offset;
      if (src_dtype == KV_DTYPE_F32) {
        std::memcpy(dst + b, static_cast<const char*>(src) + 4 * b, static_cast<size_t>(e - b) * 4);
      } else {
        for (int64_t i = b; i < e; ++i) dst[i] = read_source(src, src_dtype, i);
      }
    }
  });
}

// Copies n converted elements into tensor t at element offset, on whatever backend holds it:
// CUDA weights are converted on the host into a staging buffer and uploaded once.
void write_weight(kv_model& m, Tensor& t, int64_t offset, const void* src, int src_dtype, int64_t n) {
  if (m.backend == KV_BACKEND_CPU) {
    write_converted(t, offset, src, src_dtype, n);
    return;
  }
#ifdef KV_WITH_CUDA
  const size_t esize = t.dtype == KV_DTYPE_BF16 ? 2 : 4;
  std::vector<unsigned char> staging(static_cast<size_t>(n) * esize);
  Tensor host = t;
  host.data = staging.data();
  write_converted(host, 0, src, src_dtype, n);
  cuda::upload(m.cuda, static_cast<char*>(t.data) + static_cast<size_t>(offset) * esize, staging.data(), staging.size());
#endif
}

// Where a (kind, layer) lands: tensor, element offset and element count.
struct Target {
  Tensor* tensor;
  int64_t offset;
  int64_t count;
};

Target locate(kv_model& m, int kind, int layer) {
  const kv_model_config& c = m.cfg;
  const int64_t h = c.hidden_size, qd = static_cast<int64_t>(c.num_q_heads) * c.head_dim,
                kvd = static_cast<int64_t>(c.num_kv_heads) * c.head_dim, inter = c.intermediate_size;
  if (is_model_level(kind)) {
    switch (kind) {
      case KV_WEIGHT_EMBED: return {&m.embed, 0, c.vocab_size * h};
      case KV_WEIGHT_FINAL_NORM: return {&m.final_norm, 0, h};
      default: return {&m.lm_head, 0, c.vocab_size * h};
    }
  }
  Layer& l = m.layers[layer];
  switch (kind) {
    case KV_WEIGHT_ATTN_NORM: return {&l.attn_norm, 0, h};
    case KV_WEIGHT_Q: return {&l.qkv, 0, qd * h};
    case KV_WEIGHT_K: return {&l.qkv, qd * h, kvd * h};
    case KV_WEIGHT_V: return {&l.qkv, (qd + kvd) * h, kvd * h};
    case KV_WEIGHT_O: return {&l.o, 0, h * qd};
    case KV_WEIGHT_Q_BIAS: return {&l.qkv_bias, 0, qd};
    case KV_WEIGHT_K_BIAS: return {&l.qkv_bias, qd, kvd};
    case KV_WEIGHT_V_BIAS: return {&l.qkv_bias, qd + kvd, kvd};
    case KV_WEIGHT_Q_NORM: return {&l.q_norm, 0, c.head_dim};
    case KV_WEIGHT_K_NORM: return {&l.k_norm, 0, c.head_dim};
    case KV_WEIGHT_MLP_NORM: return {&l.mlp_norm, 0, h};
    case KV_WEIGHT_GATE: return {&l.gate_up, 0, inter * h};
    case KV_WEIGHT_UP: return {&l.gate_up, inter * h, inter * h};
    default: return {&l.down, 0, h * inter};
  }
}

void free_model(kv_model* m) noexcept {
  if (!m) return;
  for_each_tensor(*m, [&](Tensor& t) { release(*m, t); });
#ifdef KV_WITH_CUDA
  if (m->device_inv_freq)
    kv::mem_release(m->backend, m->device, KV_MEM_DEVICE, m->device_inv_freq, m->inv_freq.size() * sizeof(float));
  cuda::destroy_context(m->cuda);
#endif
  delete m;
}

}  // namespace


}  // namespace kv::model

using kv::model::Layer;
using kv::model::Tensor;

extern "C" {

kv_status kv_model_init(kv_backend backend, int32_t device, const kv_model_config* config, kv_model_t* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  *out = nullptr;
  KV_REQUIRE_NOT_NULL(config);
  kv::model::check_config(*config);
  kv::check_device(backend, device);
  auto* m = new kv_model{};
  m->backend = backend;
  m->device = device;
  m->cfg = *config;
  m->wdtype = static_cast<kv_dtype>(config->weight_dtype);
  try {
#ifdef KV_WITH_CUDA
    if (backend == KV_BACKEND_CUDA) m->cuda = kv::model::cuda::create_context(device);
#endif
    const kv_model_config& c = *config;
    const int64_t h = c.hidden_size, qd = static_cast<int64_t>(c.num_q_heads) * c.head_dim,
                  kvd = static_cast<int64_t>(c.num_kv_heads) * c.head_dim, inter = c.intermediate_size;
    kv::model::alloc(*m, m->embed, c.vocab_size, h, m->wdtype);
    kv::model::alloc(*m, m->final_norm, h, 1, KV_DTYPE_F32);
    if (!c.tie_word_embeddings) kv::model::alloc(*m, m->lm_head, c.vocab_size, h, m->wdtype);
    m->layers.resize(c.num_layers);
    for (Layer& l : m->layers) {
      kv::model::alloc(*m, l.attn_norm, h, 1, KV_DTYPE_F32);
      kv::model::alloc(*m, l.qkv, qd + 2 * kvd, h, m->wdtype);
      if (c.qkv_bias) kv::model::alloc(*m, l.qkv_bias, qd + 2 * kvd, 1, KV_DTYPE_F32);
      if (c.qk_norm) {
        kv::model::alloc(*m, l.q_norm, c.head_dim, 1, KV_DTYPE_F32);
        kv::model::alloc(*m, l.k_norm, c.head_dim, 1, KV_DTYPE_F32);
      }
      kv::model::alloc(*m, l.o, h, qd, m->wdtype);
      kv::model::alloc(*m, l.mlp_norm, h, 1, KV_DTYPE_F32);
      kv::model::alloc(*m, l.gate_up, 2 * inter, h, m->wdtype);
      kv::model::alloc(*m, l.down, h, inter, m->wdtype);
    }
    m->inv_freq = kv::model::rope_inv_freq(c);
#ifdef KV_WITH_CUDA
    if (backend == KV_BACKEND_CUDA) {
      const size_t bytes = m->inv_freq.size() * sizeof(float);
      m->device_inv_freq = static_cast<float*>(kv::mem_allocate(backend, device, KV_MEM_DEVICE, bytes));
      kv::model::cuda::upload(m->cuda, m->device_inv_freq, m->inv_freq.data(), bytes);
    }
#endif
  } catch (...) {
    kv::model::free_model(m);
    throw;
  }
  *out = m;
  KV_API_END
}

void kv_model_free(kv_model_t model) {
  if (!model) return;
  // Caches point at their model: while any lives, the model is only marked released, and the
  // last cache's free releases it. Steps on such a cache fail with a clear message.
  if (model->live_caches > 0) {
    model->released = true;
    return;
  }
  kv::model::free_model(model);
}

kv_status kv_model_set_weight(kv_model_t model, int32_t kind, int32_t layer, int32_t src_dtype, const void* host_data,
                              int64_t num_elements) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(model);
  KV_REQUIRE(kind >= KV_WEIGHT_EMBED && kind <= KV_WEIGHT_DOWN, "kind=", kind, " is not a kv_weight_kind value");
  const kv_model_config& c = model->cfg;
  if (kv::model::is_model_level(kind)) {
    KV_REQUIRE(layer == -1, "layer=", layer, ": ", kv::model::kind_name(kind), " is a model-level weight (layer -1)");
  } else {
    KV_REQUIRE(layer >= 0 && layer < c.num_layers, "layer=", layer, " is outside [0, ", c.num_layers, ")");
  }
  const std::string name = kv::model::hf_name(kind, layer);
  if (kind == KV_WEIGHT_LM_HEAD && c.tie_word_embeddings)
    kv::fail(KV_STATUS_INVALID_ARGUMENT, name, ": the config ties word embeddings, so the LM head is the embedding");
  if ((kind >= KV_WEIGHT_Q_BIAS && kind <= KV_WEIGHT_V_BIAS) && !c.qkv_bias)
    kv::fail(KV_STATUS_INVALID_ARGUMENT, name, ": this config has no q/k/v biases (qkv_bias = 0)");
  if ((kind == KV_WEIGHT_Q_NORM || kind == KV_WEIGHT_K_NORM) && !c.qk_norm)
    kv::fail(KV_STATUS_INVALID_ARGUMENT, name, ": this config has no q/k norms (qk_norm = 0)");
  KV_REQUIRE(src_dtype == KV_DTYPE_F32 || src_dtype == KV_DTYPE_BF16 || src_dtype == KV_DTYPE_F16, name,
             ": src_dtype=", src_dtype, " must be F32, BF16 or F16");
  KV_REQUIRE_NOT_NULL(host_data);
  kv::model::Target target = kv::model::locate(*model, kind, layer);
  KV_REQUIRE(num_elements == target.count, name, " has ", num_elements, " elements; this config needs ",
             target.count);
  kv::model::write_weight(*model, *target.tensor, target.offset, host_data, src_dtype, num_elements);
  model->weights_set.insert({kind, layer});
  KV_API_END
}

kv_status kv_model_randomize(kv_model_t model, uint64_t seed, float init_std) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(model);
  KV_REQUIRE(std::isfinite(init_std) && init_std > 0, "init_std=", init_std, " must be finite and > 0");
  uint64_t stream = 0;
  kv::model::for_each_tensor(*model, [&](Tensor& t) {
    const uint64_t id = stream++;
    if (!t.data) return;
#ifdef KV_WITH_CUDA
    if (model->backend == KV_BACKEND_CUDA) {
      kv::model::cuda::randomize(model->cuda, t, seed, id, init_std);
      return;
    }
#endif
    const int64_t n = t.rows * t.cols;
    const bool matrix = t.cols > 1;
    kv::cpu::parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        // Matrices: N(0, init_std); norms 1; biases 0 (vectors are norms unless they are biases).
        float value = matrix ? init_std * kv::philox::normal(seed, id, static_cast<uint64_t>(i)) : 1.f;
        if (t.dtype == KV_DTYPE_BF16) static_cast<uint16_t*>(t.data)[i] = kv::float_to_bf16(value);
        else static_cast<float*>(t.data)[i] = value;
      }
    });
  });
  for (Layer& l : model->layers) {
    if (!l.qkv_bias.data) continue;
#ifdef KV_WITH_CUDA
    if (model->backend == KV_BACKEND_CUDA) {
      kv::model::cuda::fill_zero(model->cuda, l.qkv_bias.data, l.qkv_bias.bytes());
      continue;
    }
#endif
    std::memset(l.qkv_bias.data, 0, l.qkv_bias.bytes());
  }
  model->randomized = true;
  KV_API_END
}

kv_status kv_model_check_complete(kv_model_t model) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(model);
  if (model->randomized) return KV_STATUS_OK;
  for (const auto& [kind, layer] : kv::model::required_weights(model->cfg))
    if (!model->weights_set.count({kind, layer}))
      kv::fail(KV_STATUS_INVALID_ARGUMENT, "weight ", kv::model::hf_name(kind, layer), " was never set");
  KV_API_END
}

uint64_t kv_model_weight_bytes(kv_model_t model) {
  if (!model) return 0;
  uint64_t total = 0;
  kv::model::for_each_tensor(*model, [&](Tensor& t) { total += t.data ? t.bytes() : 0; });
  return total;
}

kv_status kv_kv_cache_init(kv_model_t model, int32_t num_slots, int32_t slot_capacity_tokens, kv_kv_cache_t* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  *out = nullptr;
  KV_REQUIRE_NOT_NULL(model);
  KV_REQUIRE(!model->released, "the model was freed (kv_model_free)");
  KV_REQUIRE(num_slots > 0, "num_slots=", num_slots, " must be > 0");
  KV_REQUIRE(slot_capacity_tokens > 0 && slot_capacity_tokens <= model->cfg.max_positions, "slot_capacity_tokens=",
             slot_capacity_tokens, " must be in [1, max_positions = ", model->cfg.max_positions, "]");
  const kv_model_config& c = model->cfg;
  auto* cache = new kv_kv_cache{};
  static std::atomic<uint64_t> next_serial{1};
  cache->serial = next_serial++;
  cache->model = model;
  cache->num_slots = num_slots;
  cache->capacity = slot_capacity_tokens;
  cache->kv_bytes = static_cast<uint64_t>(c.num_layers) * num_slots * slot_capacity_tokens *
                    kv::model::kv_row_elems(c) * (model->wdtype == KV_DTYPE_BF16 ? 2 : 4);
  try {
    cache->k = kv::mem_allocate(model->backend, model->device, KV_MEM_DEVICE, cache->kv_bytes);
    cache->v = kv::mem_allocate(model->backend, model->device, KV_MEM_DEVICE, cache->kv_bytes);
    if (model->backend == KV_BACKEND_CPU) {
      cache->tokens.assign(static_cast<size_t>(num_slots) * slot_capacity_tokens, 0);
    } else {
#ifdef KV_WITH_CUDA
      cache->device_history =
          kv::model::cuda::alloc_history(model->cuda, static_cast<int64_t>(num_slots) * slot_capacity_tokens);
#endif
    }
  } catch (...) {
    kv::mem_release(model->backend, model->device, KV_MEM_DEVICE, cache->k, cache->kv_bytes);
    kv::mem_release(model->backend, model->device, KV_MEM_DEVICE, cache->v, cache->kv_bytes);
    delete cache;
    throw;
  }
  ++model->live_caches;
  *out = cache;
  KV_API_END
}

void kv_kv_cache_free(kv_kv_cache_t cache) {
  if (!cache) return;
  kv_model* m = cache->model;
  kv::mem_release(m->backend, m->device, KV_MEM_DEVICE, cache->k, cache->kv_bytes);
  kv::mem_release(m->backend, m->device, KV_MEM_DEVICE, cache->v, cache->kv_bytes);
  kv::mem_release(m->backend, m->device, KV_MEM_DEVICE, cache->summaries, cache->summary_bytes);
  kv::mem_release(m->backend, m->device, KV_MEM_DEVICE, cache->qblocks, cache->qblock_bytes);
#ifdef KV_WITH_CUDA
  if (m->cuda) kv::model::cuda::forget_cache(m->cuda, cache->serial);
  kv::model::cuda::free_history(m->cuda, cache->device_history);
#endif
  --m->live_caches;
  delete cache;
  if (m->released && m->live_caches == 0) kv::model::free_model(m);
}

uint64_t kv_kv_cache_bytes(kv_kv_cache_t cache) {
  return cache ? 2 * cache->kv_bytes + cache->summary_bytes + cache->qblock_bytes : 0;
}

}  // extern "C"

namespace {

// The checks and the StepBatch shared by kv_model_step and kv_model_step_paged. capacity_of(s)
// is the most tokens sequence s may reach in this cache (0 skips nothing: it is checked).
template <typename CapacityOf>
void prepare_step(kv_model* model, kv_kv_cache* cache, int32_t num_seqs, const int32_t* start_pos,
                  const int32_t* num_new, const int32_t* token_ids, const float* temperature, const int32_t* top_k,
                  const float* top_p, const float* min_p, const float* repetition_penalty, const uint64_t* seed,
                  const uint64_t* request_id, int32_t* sampled, float* logits, const char* capacity_what,
                  CapacityOf capacity_of, kv::model::StepBatch& b) {
  const kv_model_config& c = model->cfg;
  b.num_seqs = num_seqs;
  b.start_pos = start_pos;
  b.num_new = num_new;
  b.token_ids = token_ids;
  b.token_offset.assign(num_seqs + 1, 0);
  for (int32_t s = 0; s < num_seqs; ++s) {
    KV_REQUIRE(num_new[s] >= 1, "num_new[", s, "]=", num_new[s], " must be >= 1");
    KV_REQUIRE(start_pos[s] >= 0, "start_pos[", s, "]=", start_pos[s], " must be >= 0");
    const int64_t end = static_cast<int64_t>(start_pos[s]) + num_new[s];
    const int64_t cap = capacity_of(s);
    KV_REQUIRE(end <= cap, "sequence ", s, " would reach ", end, " tokens, past the ", capacity_what, " of ", cap);
    KV_REQUIRE(end <= c.max_positions, "sequence ", s, " would reach ", end, " tokens, past max_positions = ",
               c.max_positions);
    b.token_offset[s + 1] = b.token_offset[s] + num_new[s];
  }
  b.num_tokens = b.token_offset[num_seqs];
  for (int64_t i = 0; i < b.num_tokens; ++i)
    KV_REQUIRE(token_ids[i] >= 0 && token_ids[i] < c.vocab_size, "token_ids[", i, "]=", token_ids[i],
               " is outside the vocabulary [0, ", c.vocab_size, ")");
  if (sampled) {
    for (int32_t s = 0; s < num_seqs; ++s) {
      if (temperature)
        KV_REQUIRE(std::isfinite(temperature[s]) && temperature[s] >= 0, "temperature[", s, "]=", temperature[s],
                   " must be finite and >= 0");
      if (top_k) KV_REQUIRE(top_k[s] >= 0, "top_k[", s, "]=", top_k[s], " must be >= 0 (0 = off)");
      if (top_p) KV_REQUIRE(top_p[s] > 0 && top_p[s] <= 1, "top_p[", s, "]=", top_p[s], " must be in (0, 1]");
      if (min_p) KV_REQUIRE(min_p[s] >= 0 && min_p[s] <= 1, "min_p[", s, "]=", min_p[s], " must be in [0, 1]");
      if (repetition_penalty)
        KV_REQUIRE(std::isfinite(repetition_penalty[s]) && repetition_penalty[s] > 0, "repetition_penalty[", s,
                   "]=", repetition_penalty[s], " must be finite and > 0");
    }
  }
  b.temperature = temperature;
  b.top_k = top_k;
  b.top_p = top_p;
  b.min_p = min_p;
  b.repetition_penalty = repetition_penalty;
  b.seed = seed;
  b.request_id = request_id;
  b.sampled = sampled;
  b.logits = logits;
  (void)cache;
}

void require_step_handles(kv_model* model, kv_kv_cache* cache, int32_t num_seqs) {
  KV_REQUIRE_NOT_NULL(model);
  KV_REQUIRE_NOT_NULL(cache);
  KV_REQUIRE(cache->model == model, "cache belongs to another model");
  KV_REQUIRE(!model->released, "the model was freed (kv_model_free); only its caches are still alive");
  KV_REQUIRE(num_seqs >= 0, "num_seqs=", num_seqs, " must be >= 0");
}

}  // namespace

extern "C" {

kv_status kv_model_step(kv_model_t model, kv_kv_cache_t cache, int32_t num_seqs, const int32_t* slots,
                        const int32_t* start_pos, const int32_t* num_new, const int32_t* token_ids,
                        const float* temperature, const int32_t* top_k, const float* top_p, const float* min_p,
                        const float* repetition_penalty, const uint64_t* seed, const uint64_t* request_id,
                        int32_t* sampled, float* logits) {
  KV_API_BEGIN
  require_step_handles(model, cache, num_seqs);
  KV_REQUIRE(!cache->paged, "cache is a paged cache (kv_paged_cache_init): step it with kv_model_step_paged");
  if (num_seqs == 0) return KV_STATUS_OK;
  KV_REQUIRE_NOT_NULL(slots);
  KV_REQUIRE_NOT_NULL(start_pos);
  KV_REQUIRE_NOT_NULL(num_new);
  KV_REQUIRE_NOT_NULL(token_ids);
  kv_status complete = kv_model_check_complete(model);
  if (complete != KV_STATUS_OK) return complete;
  std::set<int32_t> used_slots;
  for (int32_t s = 0; s < num_seqs; ++s) {
    KV_REQUIRE(slots[s] >= 0 && slots[s] < cache->num_slots, "slots[", s, "]=", slots[s], " is outside [0, ",
               cache->num_slots, ")");
    KV_REQUIRE(used_slots.insert(slots[s]).second, "slots[", s, "]=", slots[s], " appears twice in one step");
  }
  kv::model::StepBatch b;
  b.slots = slots;
  prepare_step(model, cache, num_seqs, start_pos, num_new, token_ids, temperature, top_k, top_p, min_p,
               repetition_penalty, seed, request_id, sampled, logits, "slot capacity",
               [&](int32_t) { return static_cast<int64_t>(cache->capacity); }, b);
#ifdef KV_WITH_CUDA
  if (model->backend == KV_BACKEND_CUDA) {
    kv::model::cuda::step(*model, *cache, b);
    return KV_STATUS_OK;
  }
#endif
  kv::model::step_cpu(*model, *cache, b);
  KV_API_END
}

kv_status kv_paged_cache_init(kv_model_t model, int32_t num_pages, int32_t page_tokens, int32_t key_summaries,
                              kv_kv_cache_t* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  *out = nullptr;
  KV_REQUIRE_NOT_NULL(model);
  KV_REQUIRE(!model->released, "the model was freed (kv_model_free)");
  KV_REQUIRE(num_pages > 0, "num_pages=", num_pages, " must be > 0");
  KV_REQUIRE(page_tokens >= 1 && page_tokens <= 256, "page_tokens=", page_tokens, " must be in [1, 256]");
  const kv_model_config& c = model->cfg;
  const uint64_t esize = model->wdtype == KV_DTYPE_BF16 ? 2 : 4;
  const uint64_t cells = static_cast<uint64_t>(num_pages) * page_tokens;
  KV_REQUIRE(cells * c.num_kv_heads < (uint64_t{1} << 31), "num_pages * page_tokens * num_kv_heads = ",
             cells * c.num_kv_heads, " must be below 2^31");
  auto* cache = new kv_kv_cache{};
  static std::atomic<uint64_t> next_paged_serial{1ull << 62};
  cache->serial = next_paged_serial++;
  cache->model = model;
  cache->num_slots = 0;
  cache->capacity = 0;
  cache->paged = true;
  cache->num_pages = num_pages;
  cache->page_tokens = page_tokens;
  cache->kv_bytes = static_cast<uint64_t>(c.num_layers) * cells * kv::model::kv_row_elems(c) * esize;
  if (key_summaries)
    cache->summary_bytes = static_cast<uint64_t>(c.num_layers) * num_pages * kv::model::kv_row_elems(c) * 2 * esize;
  try {
    cache->k = kv::mem_allocate(model->backend, model->device, KV_MEM_DEVICE, cache->kv_bytes);
    cache->v = kv::mem_allocate(model->backend, model->device, KV_MEM_DEVICE, cache->kv_bytes);
    if (key_summaries)
      cache->summaries = kv::mem_allocate(model->backend, model->device, KV_MEM_DEVICE, cache->summary_bytes);
    if (model->backend == KV_BACKEND_CPU) {
      cache->tokens.assign(cells, 0);
    } else {
#ifdef KV_WITH_CUDA
      cache->device_history = kv::model::cuda::alloc_history(model->cuda, static_cast<int64_t>(cells));
      // Summaries start as the empty range, as the CPU's zeroed pool reads before any update.
      if (cache->summaries) kv::model::cuda::fill_zero(model->cuda, cache->summaries, cache->summary_bytes);
#endif
    }
  } catch (...) {
    kv::mem_release(model->backend, model->device, KV_MEM_DEVICE, cache->k, cache->kv_bytes);
    kv::mem_release(model->backend, model->device, KV_MEM_DEVICE, cache->v, cache->kv_bytes);
    kv::mem_release(model->backend, model->device, KV_MEM_DEVICE, cache->summaries, cache->summary_bytes);
#ifdef KV_WITH_CUDA
    if (model->cuda) kv::model::cuda::free_history(model->cuda, cache->device_history);
#endif
    delete cache;
    throw;
  }
  ++model->live_caches;
  *out = cache;
  KV_API_END
}

kv_status kv_paged_cache_init_quant(kv_model_t model, int32_t num_pages, int32_t page_tokens, int32_t key_summaries,
                                    const kv_quant_format* format, int32_t sink_tokens, int32_t num_blocks,
                                    kv_kv_cache_t* out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(out);
  *out = nullptr;
  KV_REQUIRE_NOT_NULL(model);
  const kv::quant::Layout layout = kv::check_quant_format(format);
  const kv_model_config& c = model->cfg;
  KV_REQUIRE(format->head_dim == c.head_dim, "format.head_dim=", format->head_dim, " is not the model's head_dim=",
             c.head_dim);
  KV_REQUIRE(page_tokens >= 1 && format->group_tokens % page_tokens == 0, "format.group_tokens=",
             format->group_tokens, " must be a multiple of page_tokens=", page_tokens);
  KV_REQUIRE(sink_tokens >= 0 && sink_tokens % page_tokens == 0, "sink_tokens=", sink_tokens,
             " must be a non-negative multiple of page_tokens=", page_tokens);
  KV_REQUIRE(num_blocks > 0, "num_blocks=", num_blocks, " must be > 0");
  if (model->backend == KV_BACKEND_CUDA) {
    KV_REQUIRE(model->wdtype == KV_DTYPE_BF16, "quantized caches on CUDA need a bf16 model (this one is fp32)");
    KV_REQUIRE(format->group_tokens == 128, "quantized caches on CUDA need format.group_tokens = 128, not ",
               format->group_tokens);
  }
  const uint64_t bytes = static_cast<uint64_t>(c.num_layers) * num_blocks * c.num_kv_heads * layout.bytes;
  kv_kv_cache_t cache = nullptr;
  const kv_status st = kv_paged_cache_init(model, num_pages, page_tokens, key_summaries, &cache);
  if (st != KV_STATUS_OK) return st;
  try {
    cache->qblocks = kv::mem_allocate(model->backend, model->device, KV_MEM_DEVICE, bytes);
  } catch (...) {
    kv_kv_cache_free(cache);
    throw;
  }
  cache->qblock_bytes = bytes;
  cache->num_qblocks = num_blocks;
  cache->qsink = sink_tokens;
  cache->qformat = *format;
  cache->qlayout = layout;
  cache->model_kv_heads = c.num_kv_heads;
  *out = cache;
  KV_API_END
}

kv_status kv_paged_cache_unpack_blocks(kv_kv_cache_t cache, const int32_t* blocks, const int32_t* pages,
                                       int32_t num_blocks) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(cache);
  KV_REQUIRE(cache->quant(), "cache has no quantized blocks (kv_paged_cache_init_quant)");
  KV_REQUIRE(num_blocks >= 0, "num_blocks=", num_blocks, " must be >= 0");
  if (num_blocks == 0) return KV_STATUS_OK;
  KV_REQUIRE_NOT_NULL(blocks);
  KV_REQUIRE_NOT_NULL(pages);
  const int32_t per = cache->qformat.group_tokens / cache->page_tokens;
  for (int32_t i = 0; i < num_blocks; ++i)
    KV_REQUIRE(blocks[i] >= 0 && blocks[i] < cache->num_qblocks, "blocks[", i, "]=", blocks[i],
               " is outside [0, num_blocks = ", cache->num_qblocks, ")");
  for (int64_t i = 0; i < static_cast<int64_t>(num_blocks) * per; ++i)
    KV_REQUIRE(pages[i] >= 0 && pages[i] < cache->num_pages, "pages[", i, "]=", pages[i], " is outside [0, num_pages = ",
               cache->num_pages, ")");
  kv_model* m = cache->model;
#ifdef KV_WITH_CUDA
  if (m->backend == KV_BACKEND_CUDA) {
    kv::model::cuda::unpack_blocks(*m, *cache, blocks, pages, num_blocks);
    return KV_STATUS_OK;
  }
#endif
  const kv_model_config& c = m->cfg;
  const uint64_t esize = m->wdtype == KV_DTYPE_BF16 ? 2 : 4;
  const int64_t P = cache->page_tokens, H = c.num_kv_heads, D = c.head_dim;
  for (int32_t l = 0; l < c.num_layers; ++l) {
    kv::QuantUnpackArgs a;
    a.dtype = m->wdtype;
    a.src.blocks = static_cast<char*>(cache->qblocks) + static_cast<size_t>(l * cache->qlayer_bytes());
    a.src.num_blocks = cache->num_qblocks;
    a.src.head_stride = static_cast<int64_t>(cache->qlayout.bytes);
    a.src.block_stride = a.src.head_stride * H;
    a.src.num_kv_heads = static_cast<int32_t>(H);
    a.src.sink_tokens = cache->qsink;
    a.src.group_tokens = cache->qformat.group_tokens;
    a.src.head_dim = cache->qformat.head_dim;
    a.src.boost_channels = cache->qformat.boost_channels;
    a.src.layout = cache->qlayout;
    a.src_blocks = blocks;
    a.dst_pages = pages;
    a.num_jobs = num_blocks;
    const size_t layer_bytes = static_cast<size_t>(cache->num_pages) * P * H * D * esize;
    a.dst.k = static_cast<char*>(cache->k) + l * layer_bytes;
    a.dst.v = static_cast<char*>(cache->v) + l * layer_bytes;
    a.dst.num_pages = cache->num_pages;
    a.dst.page_tokens = static_cast<int32_t>(P);
    a.dst.num_kv_heads = static_cast<int32_t>(H);
    a.dst.head_dim = static_cast<int32_t>(D);
    a.dst.page_stride = H * P * D;
    a.dst.head_stride = P * D;
    a.dst.token_stride = D;
    kv::cpu::quant_unpack(a);
  }
  KV_API_END
}

kv_status kv_paged_cache_copy_pages(kv_kv_cache_t cache, const int32_t* src, const int32_t* dst, int32_t num_copies) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(cache);
  KV_REQUIRE(cache->paged, "cache is a slot cache; only paged caches copy pages");
  KV_REQUIRE(num_copies >= 0, "num_copies=", num_copies, " must be >= 0");
  if (num_copies == 0) return KV_STATUS_OK;
  KV_REQUIRE_NOT_NULL(src);
  KV_REQUIRE_NOT_NULL(dst);
  std::set<int32_t> written;
  for (int32_t i = 0; i < num_copies; ++i) {
    KV_REQUIRE(src[i] >= 0 && src[i] < cache->num_pages, "src[", i, "]=", src[i], " is outside [0, num_pages = ",
               cache->num_pages, ")");
    KV_REQUIRE(dst[i] >= 0 && dst[i] < cache->num_pages, "dst[", i, "]=", dst[i], " is outside [0, num_pages = ",
               cache->num_pages, ")");
    KV_REQUIRE(written.insert(dst[i]).second, "dst[", i, "]=", dst[i], " is written twice");
  }
  for (int32_t i = 0; i < num_copies; ++i)
    KV_REQUIRE(written.count(src[i]) == 0 || src[i] == dst[i], "src[", i, "]=", src[i],
               " is also a destination of this call");
#ifdef KV_WITH_CUDA
  if (cache->model->backend == KV_BACKEND_CUDA) {
    kv::model::cuda::copy_pages(*cache->model, *cache, src, dst, num_copies);
    return KV_STATUS_OK;
  }
#endif
  const kv_model_config& c = cache->model->cfg;
  const uint64_t esize = cache->model->wdtype == KV_DTYPE_BF16 ? 2 : 4;
  const uint64_t page_bytes = static_cast<uint64_t>(cache->page_tokens) * kv::model::kv_row_elems(c) * esize;
  const uint64_t summary_page_bytes = static_cast<uint64_t>(kv::model::kv_row_elems(c)) * 2 * esize;
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const uint64_t layer = static_cast<uint64_t>(l) * cache->num_pages;
    for (int32_t i = 0; i < num_copies; ++i) {
      for (void* base : {cache->k, cache->v})
        std::memcpy(static_cast<char*>(base) + (layer + dst[i]) * page_bytes,
                    static_cast<const char*>(base) + (layer + src[i]) * page_bytes, page_bytes);
      if (cache->summaries)
        std::memcpy(static_cast<char*>(cache->summaries) + (layer + dst[i]) * summary_page_bytes,
                    static_cast<const char*>(cache->summaries) + (layer + src[i]) * summary_page_bytes,
                    summary_page_bytes);
    }
  }
  for (int32_t i = 0; i < num_copies; ++i)
    std::memcpy(cache->tokens.data() + static_cast<size_t>(dst[i]) * cache->page_tokens,
                cache->tokens.data() + static_cast<size_t>(src[i]) * cache->page_tokens,
                sizeof(int32_t) * cache->page_tokens);
  KV_API_END
}

kv_status kv_model_step_paged(kv_model_t model, kv_kv_cache_t cache, int32_t num_seqs, const int32_t* page_tables,
                              int32_t table_stride, const int32_t* start_pos, const int32_t* num_new,
                              const int32_t* token_ids, const kv_step_policy* policy, const float* temperature,
                              const int32_t* top_k, const float* top_p, const float* min_p,
                              const float* repetition_penalty, const uint64_t* seed, const uint64_t* request_id,
                              int32_t* sampled, float* logits) {
  return kv_model_step_paged_quant(model, cache, num_seqs, page_tables, table_stride, start_pos, num_new, token_ids,
                                   policy, nullptr, 0, nullptr, nullptr, temperature, top_k, top_p, min_p,
                                   repetition_penalty, seed, request_id, sampled, logits);
}

kv_status kv_model_step_paged_quant(kv_model_t model, kv_kv_cache_t cache, int32_t num_seqs,
                                    const int32_t* page_tables, int32_t table_stride, const int32_t* start_pos,
                                    const int32_t* num_new, const int32_t* token_ids, const kv_step_policy* policy,
                                    const int32_t* quant_blocks, int32_t quant_stride, const int32_t* quant_before,
                                    const int32_t* quant_after, const float* temperature, const int32_t* top_k,
                                    const float* top_p, const float* min_p, const float* repetition_penalty,
                                    const uint64_t* seed, const uint64_t* request_id, int32_t* sampled,
                                    float* logits) {
  KV_API_BEGIN
  require_step_handles(model, cache, num_seqs);
  KV_REQUIRE(cache->paged, "cache is a slot cache (kv_kv_cache_init): step it with kv_model_step");
  const bool quant = quant_blocks != nullptr || quant_before != nullptr || quant_after != nullptr;
  KV_REQUIRE(!quant || cache->quant(), "quant_blocks given for a cache without quantized blocks "
             "(create it with kv_paged_cache_init_quant)");
  if (policy) {
    KV_REQUIRE(policy->selection == KV_SELECTION_ALL || policy->selection == KV_SELECTION_QUEST,
               "policy->selection=", policy->selection, " is not KV_SELECTION_ALL or KV_SELECTION_QUEST");
    if (policy->selection == KV_SELECTION_QUEST) {
      KV_REQUIRE(policy->top_k >= 1, "policy->top_k=", policy->top_k, " must be >= 1 for Quest");
      KV_REQUIRE(cache->summaries != nullptr, "Quest needs key summaries: create the cache with key_summaries = 1");
      KV_REQUIRE(!cache->quant(), "Quest page selection over a quantized cache is not supported yet");
    }
  }
  if (num_seqs == 0) return KV_STATUS_OK;
  KV_REQUIRE_NOT_NULL(page_tables);
  KV_REQUIRE_NOT_NULL(start_pos);
  KV_REQUIRE_NOT_NULL(num_new);
  KV_REQUIRE_NOT_NULL(token_ids);
  KV_REQUIRE(table_stride >= 1, "table_stride=", table_stride, " must be >= 1");
  if (quant) {
    KV_REQUIRE(quant_blocks && quant_before && quant_after, "quant_blocks, quant_before and quant_after go together");
    KV_REQUIRE(quant_stride >= 1, "quant_stride=", quant_stride, " must be >= 1");
  }
  kv_status complete = kv_model_check_complete(model);
  if (complete != KV_STATUS_OK) return complete;
  const int32_t P = cache->page_tokens;
  kv::model::StepBatch b;
  b.page_tables = page_tables;
  b.table_stride = table_stride;
  b.selection = policy ? policy->selection : KV_SELECTION_ALL;
  b.select_top_k = policy ? policy->top_k : 0;
  if (quant) {
    b.quant_blocks = quant_blocks;
    b.quant_stride = quant_stride;
    b.quant_before = quant_before;
    b.quant_after = quant_after;
  }
  prepare_step(model, cache, num_seqs, start_pos, num_new, token_ids, temperature, top_k, top_p, min_p,
               repetition_penalty, seed, request_id, sampled, logits, "page table's capacity (table_stride * page_tokens)",
               [&](int32_t) { return static_cast<int64_t>(table_stride) * P; }, b);
  // Quantized groups: in range, packed groups only behind the step's own tokens, blocks
  // written by the step distinct and in range.
  const int32_t G = cache->quant() ? cache->qformat.group_tokens : 0, sink = cache->qsink;
  auto quant_span_end = [&](int32_t s) -> int64_t {  // tokens before it are either sink or quantized
    return quant ? sink + static_cast<int64_t>(quant_before[s]) * G : 0;
  };
  if (quant) {
    std::set<int32_t> packed;
    for (int32_t s = 0; s < num_seqs; ++s) {
      const int64_t end = static_cast<int64_t>(start_pos[s]) + num_new[s];
      KV_REQUIRE(quant_before[s] >= 0 && quant_before[s] <= quant_after[s], "quant_before[", s, "]=", quant_before[s],
                 " must be in [0, quant_after[", s, "]=", quant_after[s], "]");
      KV_REQUIRE(quant_after[s] <= quant_stride, "quant_after[", s, "]=", quant_after[s], " exceeds quant_stride=",
                 quant_stride);
      KV_REQUIRE(quant_before[s] == 0 || sink + static_cast<int64_t>(quant_before[s]) * G <= start_pos[s],
                 "sequence ", s, ": its ", quant_before[s], " quantized groups end at token ",
                 sink + static_cast<int64_t>(quant_before[s]) * G, ", past start_pos=", start_pos[s],
                 " (a group is packed after its tokens are written)");
      KV_REQUIRE(quant_after[s] == 0 || sink + static_cast<int64_t>(quant_after[s]) * G <= end, "sequence ", s,
                 ": packing ", quant_after[s], " groups needs ", sink + static_cast<int64_t>(quant_after[s]) * G,
                 " tokens, it has ", end, " after the step");
      for (int32_t j = 0; j < quant_after[s]; ++j) {
        const int32_t blk = quant_blocks[static_cast<int64_t>(s) * quant_stride + j];
        KV_REQUIRE(blk >= 0 && blk < cache->num_qblocks, "quant_blocks[", s, " * ", quant_stride, " + ", j, "]=", blk,
                   " is outside [0, num_blocks = ", cache->num_qblocks, ")");
        if (j >= quant_before[s])
          KV_REQUIRE(packed.insert(blk).second, "block ", blk, " is packed twice in one step (sequence ", s,
                     ", group ", j, ")");
      }
    }
    for (int32_t s = 0; s < num_seqs; ++s)
      for (int32_t j = 0; j < quant_before[s]; ++j) {
        const int32_t blk = quant_blocks[static_cast<int64_t>(s) * quant_stride + j];
        KV_REQUIRE(packed.count(blk) == 0, "block ", blk, " is read by sequence ", s, " (group ", j,
                   ") while the step packs into it");
      }
  }
  // Every page a sequence reads is in range (pages of its quantized span are not read); a page
  // written in the step belongs to one sequence alone (a shared page must be copied first).
  auto in_quant_span = [&](int32_t s, int64_t j) {
    return quant && j * P >= sink && j * P < quant_span_end(s);
  };
  std::set<int32_t> written;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int64_t end = static_cast<int64_t>(start_pos[s]) + num_new[s];
    const int64_t pages = (end + P - 1) / P;
    for (int64_t j = 0; j < pages; ++j) {
      if (in_quant_span(s, j)) continue;
      const int32_t page = page_tables[static_cast<int64_t>(s) * table_stride + j];
      KV_REQUIRE(page >= 0 && page < cache->num_pages, "page_tables[", s, " * ", table_stride, " + ", j, "]=", page,
                 " is outside [0, num_pages = ", cache->num_pages, ")");
      if (j >= start_pos[s] / P)
        KV_REQUIRE(written.insert(page).second, "page ", page, " is written by two sequences of one step (sequence ",
                   s, ", logical page ", j, "): copy it first (kv_paged_cache_copy_pages)");
    }
  }
  for (int32_t s = 0; s < num_seqs; ++s)
    for (int64_t j = 0; j < start_pos[s] / P; ++j) {
      if (in_quant_span(s, j)) continue;
      const int32_t page = page_tables[static_cast<int64_t>(s) * table_stride + j];
      KV_REQUIRE(written.count(page) == 0, "page ", page, " is read by sequence ", s, " (logical page ", j,
                 ") while another sequence of the step writes it: copy it first (kv_paged_cache_copy_pages)");
    }
#ifdef KV_WITH_CUDA
  if (model->backend == KV_BACKEND_CUDA) {
    kv::model::cuda::step(*model, *cache, b);
    return KV_STATUS_OK;
  }
#endif
  kv::model::step_cpu(*model, *cache, b);
  KV_API_END
}

kv_status kv_model_set_option(kv_model_t model, const char* name, int64_t value) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(model);
  KV_REQUIRE_NOT_NULL(name);
  KV_REQUIRE(!model->released, "the model was freed (kv_model_free)");
  const std::string option(name);
  if (option == "cuda_graphs") {
    KV_REQUIRE(value == 0 || value == 1, "option cuda_graphs=", value, " must be 0 or 1");
    model->cuda_graphs = value == 1;
  } else if (option == "pdl") {
    KV_REQUIRE(value == 0 || value == 1, "option pdl=", value, " must be 0 or 1");
    model->pdl = value == 1;
  } else if (option == "gemv_max_rows") {
    KV_REQUIRE(value >= 0 && value <= 16, "option gemv_max_rows=", value, " must be in [0, 16]");
    model->gemv_max_rows = static_cast<int32_t>(value);
  } else if (option == "profile") {
    KV_REQUIRE(value == 0 || value == 1, "option profile=", value, " must be 0 or 1");
    model->profile = value == 1;
#ifdef KV_WITH_CUDA
    if (model->cuda) kv::model::cuda::set_profiling(model->cuda, model->profile);
#endif
  } else {
    KV_REQUIRE(false, "unknown model option '", option, "' (known: cuda_graphs, pdl, gemv_max_rows, profile)");
  }
  KV_API_END
}

kv_status kv_model_profile_read(kv_model_t model, char* buf, uint64_t capacity, uint64_t* needed_out) {
  KV_API_BEGIN
  KV_REQUIRE_NOT_NULL(model);
  KV_REQUIRE(buf != nullptr || capacity == 0, "buf is NULL with capacity=", capacity);
  std::string text = "kind stage calls total_ms launch_ms\n";
#ifdef KV_WITH_CUDA
  if (model->cuda) text = kv::model::cuda::profile_text(model->cuda);
#endif
  if (needed_out) *needed_out = text.size() + 1;
  if (capacity > 0) {
    const size_t n = std::min<size_t>(text.size(), static_cast<size_t>(capacity - 1));
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  KV_API_END
}

}  // extern "C"
