// One forward step of the model on the CPU for a batch of sequences, then sampling.
//
// Activations are fp32 [tokens][features], tokens of all sequences stacked. Every output
// element is computed in an order fixed by the op alone (matmul_wt, row norms, attend_rows
// over positions [0, p]), never by the batch, so batched and solo runs agree bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cpu/attention.h"
#include "cpu/bf16.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/paged_quest.h"
#include "cpu/quant_kv.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"
#include "model/model_impl.h"

namespace kv::model {
namespace {

using cpu::parallel_for;

// x * rsqrt(mean(x^2) + eps) * weight, as Hugging Face's LlamaRMSNorm (in fp32). The sum of
// squares runs k ascending, one accumulator: fixed for every row.
void rms_norm_row(const float* x, const float* weight, int64_t n, float eps, float* out) {
  double ss = 0.0;  // double: the norm of a 4096-wide row keeps full fp32 accuracy
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * inv) * weight[i];
}

void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t n, float eps, float* out) {
  parallel_for(rows, 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) rms_norm_row(x + r * n, weight, n, eps, out + r * n);
  });
}

// Rotary embedding of one head in place, Hugging Face's rotate_half layout: channel i pairs
// with channel i + d/2, angle = position * inv_freq[i] in fp32 (one rounding, as the
// reference's fp32 matmul of inv_freq by positions).
void rope_head(float* x, const float* cos_t, const float* sin_t, int32_t d) {
  const int32_t half = d / 2;
  for (int32_t i = 0; i < half; ++i) {
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * cos_t[i] - x2 * sin_t[i];
    x[i + half] = x2 * cos_t[i] + x1 * sin_t[i];
  }
}

inline float silu(float g) { return g / (1.f + std::exp(-g)); }

void store_row(void* dst, kv_dtype dtype, const float* src, int64_t n) {
  if (dtype == KV_DTYPE_BF16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
  } else {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
}

void load_row(const void* src, kv_dtype dtype, int64_t n, float* dst) {
  if (dtype == KV_DTYPE_BF16) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
  } else {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
}

// Quest's pages for the decode tokens of quest_seqs (kv::cpu::quest_select, the reference of
// kv_quest_select_async): the query in the model dtype, as the CUDA step will score it.
void select_quest(const kv_model& m, const StepBatch& b, const PagedKv& pool, const PageSummaries& summaries,
                  const std::vector<int32_t>& quest_seqs, const float* qkv, int64_t qkv_row,
                  std::vector<std::vector<int32_t>>& selected) {
  const int64_t HQ = m.cfg.num_q_heads, HKV = m.cfg.num_kv_heads, D = m.cfg.head_dim, P = pool.page_tokens;
  const int32_t n = static_cast<int32_t>(quest_seqs.size());
  const size_t esize = m.wdtype == KV_DTYPE_BF16 ? 2 : 4;
  std::vector<char> q(static_cast<size_t>(n * HQ * D) * esize);
  std::vector<int32_t> table, lens;
  int32_t max_len = 0, max_pages = 0;
  for (int32_t s : quest_seqs) max_pages = std::max(max_pages, (b.start_pos[s] + 1 + static_cast<int32_t>(P) - 1) / static_cast<int32_t>(P));
  for (int32_t i = 0; i < n; ++i) {
    const int32_t s = quest_seqs[static_cast<size_t>(i)];
    store_row(q.data() + static_cast<size_t>(i * HQ * D) * esize, m.wdtype, qkv + b.token_offset[s] * qkv_row, HQ * D);
    lens.push_back(b.start_pos[s] + 1);
    max_len = std::max(max_len, lens.back());
    for (int32_t j = 0; j < max_pages; ++j)
      table.push_back(j < b.table_stride ? b.page_tables[static_cast<int64_t>(s) * b.table_stride + j] : 0);
  }
  const int32_t k = b.select_top_k;
  std::vector<int32_t> indices(static_cast<size_t>(n * HKV * k)), counts(static_cast<size_t>(n * HKV));
  QuestSelectArgs a;
  a.dtype = m.wdtype;
  a.q = q.data();
  a.kv = pool;
  a.table.pages = table.data();
  a.table.seq_stride = max_pages;
  a.table.head_stride = 0;
  a.table.kv_lens = lens.data();
  a.summaries = summaries;
  a.batch = n;
  a.num_q_heads = static_cast<int32_t>(HQ);
  a.max_kv_len = max_len;
  a.top_k = k;
  a.indices_out = indices.data();
  a.counts_out = counts.data();
  a.out_stride = k;
  cpu::quest_select(a);
  for (int32_t i = 0; i < n; ++i)
    for (int64_t kvh = 0; kvh < HKV; ++kvh) {
      const size_t row = static_cast<size_t>(i * HKV + kvh);
      std::vector<int32_t>& sel = selected[static_cast<size_t>(quest_seqs[static_cast<size_t>(i)] * HKV + kvh)];
      sel.assign(indices.begin() + static_cast<std::ptrdiff_t>(row * k),
                 indices.begin() + static_cast<std::ptrdiff_t>(row * k + counts[row]));
    }
}

}  // namespace

void step_cpu(kv_model& m, kv_kv_cache& cache, const StepBatch& b) {
  const kv_model_config& c = m.cfg;
  const bool avx2 = cpu::active_isa() >= KV_CPU_ISA_AVX2;
  const int64_t T = b.num_tokens, H = c.hidden_size, D = c.head_dim, HQ = c.num_q_heads, HKV = c.num_kv_heads;
  const int64_t QD = HQ * D, KVD = HKV * D, QKV = QD + 2 * KVD, I = c.intermediate_size;
  const int32_t group = static_cast<int32_t>(HQ / HKV);
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const size_t esize = m.wdtype == KV_DTYPE_BF16 ? 2 : 4;

  // Per token: its sequence and position.
  std::vector<int32_t> seq_of(T), pos_of(T);
  for (int32_t s = 0; s < b.num_seqs; ++s)
    for (int64_t i = b.token_offset[s]; i < b.token_offset[s + 1]; ++i) {
      seq_of[i] = s;
      pos_of[i] = b.start_pos[s] + static_cast<int32_t>(i - b.token_offset[s]);
    }
  // Where position p of sequence s lives: its cell (slot caches: slot * capacity + p; paged
  // caches: page * P + p % P), the index of its token id in the history.
  const bool paged = cache.paged;
  const int64_t P = paged ? cache.page_tokens : 0;
  auto page_at = [&](int32_t s, int64_t j) -> int64_t {  // logical page j
    return b.page_tables[static_cast<int64_t>(s) * b.table_stride + j];
  };
  auto page_of = [&](int32_t s, int64_t pos) -> int64_t { return page_at(s, pos / P); };
  auto cell_of = [&](int32_t s, int64_t pos) -> int64_t {
    return paged ? page_of(s, pos) * P + pos % P : static_cast<int64_t>(b.slots[s]) * cache.capacity + pos;
  };
  // The token history feeds repetition penalties.
  for (int64_t i = 0; i < T; ++i) cache.tokens[static_cast<size_t>(cell_of(seq_of[i], pos_of[i]))] = b.token_ids[i];

  // cos/sin per token and frequency.
  const int64_t half = D / 2;
  std::vector<float> cos_t(T * half), sin_t(T * half);
  parallel_for(T, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(pos_of[t]) * m.inv_freq[i];
        cos_t[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sin_t[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
  });

  std::vector<float> x(T * H), h(T * H), qkv(T * QKV), attn(T * QD), gu(T * 2 * I), act(T * I), proj(T * H);
  parallel_for(T, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      load_row(static_cast<const char*>(m.embed.data) + static_cast<size_t>(b.token_ids[t]) * H * esize, m.wdtype, H,
               x.data() + t * H);
  });

  const int64_t layer_stride = (paged ? static_cast<int64_t>(cache.num_pages) * P
                                      : static_cast<int64_t>(cache.num_slots) * cache.capacity) * KVD;  // elements
  const int64_t summary_layer_stride = static_cast<int64_t>(cache.num_pages) * KVD * 2;  // elements
  // Paged caches keep pages head-major: row (page, kv head, r) at ((page * HKV + head) * P + r) * D.
  auto paged_row = [&](int64_t page, int64_t head, int64_t r) { return ((page * HKV + head) * P + r) * D; };
  std::vector<std::vector<int32_t>> selected(paged ? static_cast<size_t>(b.num_seqs * HKV) : 0);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = m.layers[l];
    rms_norm_rows(x.data(), static_cast<const float*>(L.attn_norm.data), T, H, c.rms_norm_eps, h.data());
    cpu::matmul_wt(h.data(), T, H, L.qkv.data, m.wdtype, QKV, qkv.data());

    char* k_layer = static_cast<char*>(cache.k) + static_cast<size_t>(l * layer_stride) * esize;
    char* v_layer = static_cast<char*>(cache.v) + static_cast<size_t>(l * layer_stride) * esize;
    parallel_for(T, 8, [&](int64_t t0, int64_t t1) {
      std::vector<float> tmp(D);
      for (int64_t t = t0; t < t1; ++t) {
        float* row = qkv.data() + t * QKV;
        if (L.qkv_bias.data) {
          const float* bias = static_cast<const float*>(L.qkv_bias.data);
          for (int64_t i = 0; i < QKV; ++i) row[i] += bias[i];
        }
        for (int64_t hd = 0; hd < HQ + HKV; ++hd) {  // q heads, then k heads
          float* head = row + hd * D;
          if (c.qk_norm) {
            const Tensor& norm = hd < HQ ? L.q_norm : L.k_norm;
            rms_norm_row(head, static_cast<const float*>(norm.data), D, c.rms_norm_eps, tmp.data());
            std::memcpy(head, tmp.data(), static_cast<size_t>(D) * sizeof(float));
          }
          rope_head(head, cos_t.data() + t * half, sin_t.data() + t * half, static_cast<int32_t>(D));
        }
        // K (post-RoPE) and V into the sequence's slot or page at its position.
        if (paged) {
          const int64_t page = page_of(seq_of[t], pos_of[t]), r = pos_of[t] % P;
          for (int64_t kvh = 0; kvh < HKV; ++kvh) {
            const size_t at = static_cast<size_t>(paged_row(page, kvh, r)) * esize;
            store_row(k_layer + at, m.wdtype, row + QD + kvh * D, D);
            store_row(v_layer + at, m.wdtype, row + QD + KVD + kvh * D, D);
          }
        } else {
          const int64_t cell = (static_cast<int64_t>(b.slots[seq_of[t]]) * cache.capacity + pos_of[t]) * KVD;
          store_row(k_layer + static_cast<size_t>(cell) * esize, m.wdtype, row + QD, KVD);
          store_row(v_layer + static_cast<size_t>(cell) * esize, m.wdtype, row + QD + KVD, KVD);
        }
      }
    });

    if (paged) {
      // The layer's pool as the paged kernels see it (Kvasir's head-major layout).
      PagedKv pool;
      pool.k = k_layer;
      pool.v = v_layer;
      pool.num_pages = cache.num_pages;
      pool.page_tokens = static_cast<int32_t>(P);
      pool.num_kv_heads = static_cast<int32_t>(HKV);
      pool.head_dim = static_cast<int32_t>(D);
      pool.page_stride = HKV * P * D;
      pool.head_stride = P * D;
      pool.token_stride = D;
      PageSummaries summaries;
      summaries.data = cache.summaries ? static_cast<char*>(cache.summaries) +
                                             static_cast<size_t>(l * summary_layer_stride) * esize
                                       : nullptr;
      summaries.page_stride = HKV * 2 * D;
      summaries.head_stride = 2 * D;
      if (summaries.data) {
        // Every page the step wrote, over its rows so far.
        std::vector<int32_t> pages, valid;
        for (int32_t s = 0; s < b.num_seqs; ++s) {
          const int64_t end = static_cast<int64_t>(b.start_pos[s]) + b.num_new[s];
          for (int64_t j = b.start_pos[s] / P; j * P < end; ++j) {
            pages.push_back(static_cast<int32_t>(page_at(s, j)));
            valid.push_back(static_cast<int32_t>(std::min<int64_t>(P, end - j * P)));
          }
        }
        PageSummaryArgs u;
        u.dtype = m.wdtype;
        u.kv = pool;
        u.pages = pages.data();
        u.valid_tokens = valid.data();
        u.num_update = static_cast<int32_t>(pages.size());
        u.summaries = summaries;
        cpu::page_summary_update(u);
      }
      // Every page for prefill chunks and full KV; Quest's selection for decode tokens.
      std::vector<int32_t> quest_seqs;
      for (int32_t s = 0; s < b.num_seqs; ++s) {
        const int64_t end = static_cast<int64_t>(b.start_pos[s]) + b.num_new[s];
        const bool quest = b.selection == KV_SELECTION_QUEST && b.num_new[s] == 1 && b.start_pos[s] > 0;
        if (quest) quest_seqs.push_back(s);
        for (int64_t kvh = 0; kvh < HKV; ++kvh) {
          std::vector<int32_t>& sel = selected[static_cast<size_t>(s * HKV + kvh)];
          sel.clear();
          if (!quest)
            for (int64_t j = 0; j * P < end; ++j) sel.push_back(static_cast<int32_t>(j));
        }
      }
      if (!quest_seqs.empty()) select_quest(m, b, pool, summaries, quest_seqs, qkv.data(), QKV, selected);
    }

    // A quantized cache's blocks of this layer (kv_quant_kv), or none.
    quant::QuantKv qkv_layer;
    if (cache.quant() && b.quant_blocks) {
      qkv_layer.blocks = static_cast<char*>(cache.qblocks) + static_cast<size_t>(l * cache.qlayer_bytes());
      qkv_layer.num_blocks = cache.num_qblocks;
      qkv_layer.head_stride = static_cast<int64_t>(cache.qlayout.bytes);
      qkv_layer.block_stride = qkv_layer.head_stride * HKV;
      qkv_layer.num_kv_heads = static_cast<int32_t>(HKV);
      qkv_layer.sink_tokens = cache.qsink;
      qkv_layer.group_tokens = cache.qformat.group_tokens;
      qkv_layer.head_dim = cache.qformat.head_dim;
      qkv_layer.boost_channels = cache.qformat.boost_channels;
      qkv_layer.layout = cache.qlayout;
    }
    const int64_t QG = cache.quant() ? cache.qformat.group_tokens : 1;

    // Causal attention: token t at position p attends to its sequence's positions [0, p]. A paged
    // cache gathers each (sequence, KV head)'s attended rows in position order into one block, so
    // attend_rows sees exactly what a slot cache holds (same rows, same order, same result).
    if (paged) {
      parallel_for(static_cast<int64_t>(b.num_seqs) * HKV, 1, [&](int64_t i0, int64_t i1) {
        std::vector<float> scratch;
        std::vector<char> kbuf, vbuf;
        std::vector<float> fbuf[2];
        for (int64_t i = i0; i < i1; ++i) {
          const int32_t s = static_cast<int32_t>(i / HKV);
          const int64_t kvh = i % HKV, end = static_cast<int64_t>(b.start_pos[s]) + b.num_new[s];
          const std::vector<int32_t>& sel = selected[static_cast<size_t>(i)];
          if (qkv_layer.blocks) {
            // A quantized cache: every position in order as fp32, the quantized groups
            // dequantized (the values kv_quant_decode_async attends), then attend_rows in fp32.
            const int64_t qbegin = cache.qsink, qend = cache.qsink + static_cast<int64_t>(b.quant_before[s]) * QG;
            std::vector<float>& kf = fbuf[0];
            std::vector<float>& vf = fbuf[1];
            kf.resize(static_cast<size_t>(end * D));
            vf.resize(kf.size());
            for (int64_t j = 0; j * P < end; ++j) {
              const int64_t p0 = j * P;
              if (p0 >= qbegin && p0 < qend) continue;
              const int64_t valid = std::min<int64_t>(P, end - p0);
              const char* kr = k_layer + static_cast<size_t>(paged_row(page_at(s, j), kvh, 0)) * esize;
              const char* vr = v_layer + static_cast<size_t>(paged_row(page_at(s, j), kvh, 0)) * esize;
              load_row(kr, m.wdtype, valid * D, kf.data() + p0 * D);
              load_row(vr, m.wdtype, valid * D, vf.data() + p0 * D);
            }
            for (int32_t g = 0; g < b.quant_before[s]; ++g) {
              const int64_t p0 = qbegin + static_cast<int64_t>(g) * QG;
              cpu::quant_dequantize_head(qkv_layer, b.quant_blocks[static_cast<int64_t>(s) * b.quant_stride + g],
                                         static_cast<int32_t>(kvh), kf.data() + p0 * D, vf.data() + p0 * D);
            }
            for (int64_t t = b.token_offset[s]; t < b.token_offset[s + 1]; ++t) {
              const float* q = qkv.data() + t * QKV + kvh * group * D;
              float* out = attn.data() + t * QD + kvh * group * D;
              cpu::attend_rows(q, kf.data(), vf.data(), D, group, static_cast<int32_t>(D), scale, 0, pos_of[t] + 1, out,
                               nullptr, avx2, scratch);
            }
            continue;
          }
          kbuf.resize(static_cast<size_t>(sel.size() * P * D) * esize);
          vbuf.resize(kbuf.size());
          int64_t rows = 0;
          for (int32_t j : sel) {
            const int64_t valid = std::min<int64_t>(P, end - static_cast<int64_t>(j) * P);
            const size_t at = static_cast<size_t>(paged_row(page_at(s, j), kvh, 0)) * esize;
            const size_t bytes = static_cast<size_t>(valid * D) * esize;
            std::memcpy(kbuf.data() + static_cast<size_t>(rows * D) * esize, k_layer + at, bytes);
            std::memcpy(vbuf.data() + static_cast<size_t>(rows * D) * esize, v_layer + at, bytes);
            rows += valid;
          }
          const bool all = static_cast<int64_t>(sel.size()) == (end + P - 1) / P;
          for (int64_t t = b.token_offset[s]; t < b.token_offset[s + 1]; ++t) {
            const float* q = qkv.data() + t * QKV + kvh * group * D;
            float* out = attn.data() + t * QD + kvh * group * D;
            const int64_t upto = all ? pos_of[t] + 1 : rows;  // a selection is made for the last position only
            if (m.wdtype == KV_DTYPE_BF16)
              cpu::attend_rows(q, reinterpret_cast<const uint16_t*>(kbuf.data()),
                               reinterpret_cast<const uint16_t*>(vbuf.data()), D, group, static_cast<int32_t>(D),
                               scale, 0, upto, out, nullptr, avx2, scratch);
            else
              cpu::attend_rows(q, reinterpret_cast<const float*>(kbuf.data()),
                               reinterpret_cast<const float*>(vbuf.data()), D, group, static_cast<int32_t>(D), scale,
                               0, upto, out, nullptr, avx2, scratch);
          }
        }
      });
    } else
    parallel_for(T * HKV, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> scratch;
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t t = i / HKV, kvh = i % HKV;
        const int64_t slot_base = static_cast<int64_t>(b.slots[seq_of[t]]) * cache.capacity * KVD + kvh * D;
        const float* q = qkv.data() + t * QKV + kvh * group * D;
        float* out = attn.data() + t * QD + kvh * group * D;
        if (m.wdtype == KV_DTYPE_BF16) {
          const auto* kb = reinterpret_cast<const uint16_t*>(k_layer) + slot_base;
          const auto* vb = reinterpret_cast<const uint16_t*>(v_layer) + slot_base;
          cpu::attend_rows(q, kb, vb, KVD, group, static_cast<int32_t>(D), scale, 0, pos_of[t] + 1, out, nullptr, avx2,
                           scratch);
        } else {
          const auto* kb = reinterpret_cast<const float*>(k_layer) + slot_base;
          const auto* vb = reinterpret_cast<const float*>(v_layer) + slot_base;
          cpu::attend_rows(q, kb, vb, KVD, group, static_cast<int32_t>(D), scale, 0, pos_of[t] + 1, out, nullptr, avx2,
                           scratch);
        }
      }
    });

    if (qkv_layer.blocks) {
      // Groups that left the bf16 window in this step: packed from their pages into blocks.
      std::vector<int32_t> src_pages, dst_blocks;
      for (int32_t s = 0; s < b.num_seqs; ++s)
        for (int32_t g = b.quant_before[s]; g < b.quant_after[s]; ++g) {
          dst_blocks.push_back(b.quant_blocks[static_cast<int64_t>(s) * b.quant_stride + g]);
          const int64_t j0 = (cache.qsink + static_cast<int64_t>(g) * QG) / P;
          for (int64_t j = j0; j < j0 + QG / P; ++j) src_pages.push_back(static_cast<int32_t>(page_at(s, j)));
        }
      if (!dst_blocks.empty()) {
        QuantPackArgs pk;
        pk.dtype = m.wdtype;
        pk.src.k = k_layer;
        pk.src.v = v_layer;
        pk.src.num_pages = cache.num_pages;
        pk.src.page_tokens = static_cast<int32_t>(P);
        pk.src.num_kv_heads = static_cast<int32_t>(HKV);
        pk.src.head_dim = static_cast<int32_t>(D);
        pk.src.page_stride = HKV * P * D;
        pk.src.head_stride = P * D;
        pk.src.token_stride = D;
        pk.src_pages = src_pages.data();
        pk.dst_blocks = dst_blocks.data();
        pk.num_jobs = static_cast<int32_t>(dst_blocks.size());
        pk.dst = qkv_layer;
        cpu::quant_pack(pk);
      }
    }
    cpu::matmul_wt(attn.data(), T, QD, L.o.data, m.wdtype, H, proj.data());
    for (int64_t i = 0; i < T * H; ++i) x[i] += proj[i];

    rms_norm_rows(x.data(), static_cast<const float*>(L.mlp_norm.data), T, H, c.rms_norm_eps, h.data());
    cpu::matmul_wt(h.data(), T, H, L.gate_up.data, m.wdtype, 2 * I, gu.data());
    parallel_for(T, 8, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t i = 0; i < I; ++i) act[t * I + i] = silu(gu[t * 2 * I + i]) * gu[t * 2 * I + I + i];
    });
    cpu::matmul_wt(act.data(), T, I, L.down.data, m.wdtype, H, proj.data());
    for (int64_t i = 0; i < T * H; ++i) x[i] += proj[i];
  }

  if (!b.sampled && !b.logits) return;
  // The last new position of each sequence: final norm, LM head, then sampling.
  const int64_t S = b.num_seqs, V = c.vocab_size;
  std::vector<float> last(S * H), logits(S * V);
  for (int64_t s = 0; s < S; ++s)
    rms_norm_row(x.data() + (b.token_offset[s + 1] - 1) * H, static_cast<const float*>(m.final_norm.data), H,
                 c.rms_norm_eps, last.data() + s * H);
  const void* head = c.tie_word_embeddings ? m.embed.data : m.lm_head.data;
  cpu::matmul_wt(last.data(), S, H, head, m.wdtype, V, logits.data());
  if (b.logits) std::memcpy(b.logits, logits.data(), logits.size() * sizeof(float));
  if (!b.sampled) return;
  // A sequence's token history: in place for a slot cache, gathered through the pages otherwise.
  std::vector<std::vector<int32_t>> gathered(paged ? static_cast<size_t>(S) : 0);
  auto history_of = [&](int64_t s, int64_t length) -> const int32_t* {
    if (!paged) return cache.tokens.data() + static_cast<size_t>(b.slots[s]) * cache.capacity;
    std::vector<int32_t>& hist = gathered[static_cast<size_t>(s)];
    hist.resize(static_cast<size_t>(length));
    for (int64_t pos = 0; pos < length; ++pos)
      hist[static_cast<size_t>(pos)] = cache.tokens[static_cast<size_t>(cell_of(static_cast<int32_t>(s), pos))];
    return hist.data();
  };
  parallel_for(S, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t length = static_cast<int64_t>(b.start_pos[s]) + b.num_new[s];
      b.sampled[s] = sample_cpu(logits.data() + s * V, static_cast<int32_t>(V), b.temperature ? b.temperature[s] : 0.f,
                                b.top_k ? b.top_k[s] : 0, b.top_p ? b.top_p[s] : 1.f, b.min_p ? b.min_p[s] : 0.f,
                                b.repetition_penalty ? b.repetition_penalty[s] : 1.f,
                                history_of(s, length), length,
                                b.seed ? b.seed[s] : 0, b.request_id ? b.request_id[s] : 0,
                                static_cast<uint64_t>(length));
    }
  });
}

}  // namespace kv::model
