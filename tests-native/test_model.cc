// The model runtime through the C ABI on the CPU: its matrix product against a double
// reference, RoPE frequencies, the invariants a serving engine relies on (batched = solo,
// chunked prefill = whole prefill, bit for bit), sampling semantics, and every refusal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "test_util.h"

namespace kvt {
namespace {

std::string last_error() { return kv_last_error(); }

kv_model_config tiny_config(kv_dtype dtype, bool qk_norm = false, bool bias = false, bool tied = false) {
  kv_model_config c{};
  c.vocab_size = 97;
  c.hidden_size = 96;
  c.intermediate_size = 160;
  c.num_layers = 2;
  c.num_q_heads = 3;
  c.num_kv_heads = 1;
  c.head_dim = 64;
  c.max_positions = 256;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.f;
  c.rope_scaling = KV_ROPE_DEFAULT;
  c.qk_norm = qk_norm;
  c.qkv_bias = bias;
  c.tie_word_embeddings = tied;
  c.weight_dtype = dtype;
  return c;
}

// Every weight of a config as (kind, layer, element count).
std::vector<std::tuple<int, int, int64_t>> weight_list(const kv_model_config& c) {
  const int64_t h = c.hidden_size, qd = static_cast<int64_t>(c.num_q_heads) * c.head_dim,
                kvd = static_cast<int64_t>(c.num_kv_heads) * c.head_dim, inter = c.intermediate_size;
  std::vector<std::tuple<int, int, int64_t>> w{{KV_WEIGHT_EMBED, -1, c.vocab_size * h}, {KV_WEIGHT_FINAL_NORM, -1, h}};
  if (!c.tie_word_embeddings) w.emplace_back(KV_WEIGHT_LM_HEAD, -1, c.vocab_size * h);
  for (int l = 0; l < c.num_layers; ++l) {
    w.emplace_back(KV_WEIGHT_ATTN_NORM, l, h);
    w.emplace_back(KV_WEIGHT_Q, l, qd * h);
    w.emplace_back(KV_WEIGHT_K, l, kvd * h);
    w.emplace_back(KV_WEIGHT_V, l, kvd * h);
    w.emplace_back(KV_WEIGHT_O, l, h * qd);
    if (c.qkv_bias) {
      w.emplace_back(KV_WEIGHT_Q_BIAS, l, qd);
      w.emplace_back(KV_WEIGHT_K_BIAS, l, kvd);
      w.emplace_back(KV_WEIGHT_V_BIAS, l, kvd);
    }
    if (c.qk_norm) {
      w.emplace_back(KV_WEIGHT_Q_NORM, l, c.head_dim);
      w.emplace_back(KV_WEIGHT_K_NORM, l, c.head_dim);
    }
    w.emplace_back(KV_WEIGHT_MLP_NORM, l, h);
    w.emplace_back(KV_WEIGHT_GATE, l, inter * h);
    w.emplace_back(KV_WEIGHT_UP, l, inter * h);
    w.emplace_back(KV_WEIGHT_DOWN, l, h * inter);
  }
  return w;
}

bool is_norm(int kind) {
  return kind == KV_WEIGHT_FINAL_NORM || kind == KV_WEIGHT_ATTN_NORM || kind == KV_WEIGHT_MLP_NORM ||
         kind == KV_WEIGHT_Q_NORM || kind == KV_WEIGHT_K_NORM;
}

// A model (weights drawn on the host from a seed, so every backend gets the same values) and a
// cache, freed on scope exit. Large weights (std 0.15) keep logits far from uniform.
struct TinyModel {
  kv_model_t model = nullptr;
  kv_kv_cache_t cache = nullptr;
  TinyModel(const kv_model_config& c, uint64_t seed, int slots = 4, int capacity = 128,
            kv_backend backend = KV_BACKEND_CPU) {
    KVT_CHECK(kv_model_init(backend, 0, &c, &model));
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> dist(0.f, 0.15f);
    for (const auto& [kind, layer, n] : weight_list(c)) {
      std::vector<float> values(static_cast<size_t>(n));
      for (auto& v : values) v = is_norm(kind) ? 1.f + 0.3f * dist(rng) : dist(rng);
      KVT_CHECK(kv_model_set_weight(model, kind, layer, KV_DTYPE_F32, values.data(), n));
    }
    KVT_CHECK(kv_kv_cache_init(model, slots, capacity, &cache));
  }
  ~TinyModel() {
    kv_kv_cache_free(cache);
    kv_model_free(model);
  }
};

// Runs one step; returns logits [num_seqs][vocab].
std::vector<float> step(const TinyModel& m, int vocab, const std::vector<int32_t>& slots,
                        const std::vector<int32_t>& start, const std::vector<int32_t>& num_new,
                        const std::vector<int32_t>& tokens, std::vector<int32_t>* sampled = nullptr,
                        const std::vector<float>* temperature = nullptr, const std::vector<uint64_t>* seeds = nullptr) {
  const int32_t n = static_cast<int32_t>(slots.size());
  std::vector<float> logits(static_cast<size_t>(n) * vocab, std::nanf(""));
  std::vector<int32_t> out(n, -1);
  std::vector<uint64_t> request(n);
  std::iota(request.begin(), request.end(), 100);
  KVT_CHECK(kv_model_step(m.model, m.cache, n, slots.data(), start.data(), num_new.data(), tokens.data(),
                          temperature ? temperature->data() : nullptr, nullptr, nullptr, nullptr, nullptr,
                          seeds ? seeds->data() : nullptr, request.data(), sampled ? out.data() : nullptr,
                          logits.data()));
  if (sampled) *sampled = out;
  for (float v : logits) EXPECT_FALSE(std::isnan(v)) << "a logit was not written";
  return logits;
}

std::vector<int32_t> random_tokens(std::mt19937_64& rng, int n, int vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

// rms(cuda - cpu) / std(logits) for a bf16 model of `layers` layers: 8 rounding sites a layer
// and the final norm, each a relative error of at most 2^-8, independent (CudaLogitsMatchTheCpu).
double bf16_rms_bound(int layers) { return std::sqrt(8.0 * layers + 1) / 256.0; }

struct ModelParam {
  kv_backend backend;
  kv_dtype dtype;
};

// Every test runs on the CPU and, where a device exists, on CUDA. The CPU promises bit-exact
// batch invariance; CUDA (cuBLAS picks algorithms by shape) promises agreement within rounding.
class ModelTest : public ::testing::TestWithParam<ModelParam> {
 protected:
  void SetUp() override {
    const std::string why = unavailable_reason({GetParam().backend, KV_CPU_ISA_AVX2});
    if (!why.empty()) GTEST_SKIP() << why;
  }
  kv_backend backend() const { return GetParam().backend; }
  kv_dtype dtype() const { return GetParam().dtype; }
  bool exact() const { return backend() == KV_BACKEND_CPU; }

  // Equal bit for bit on the CPU; on CUDA in fp32 within 1e-3 of the largest logit (fp32 rounding
  // of differently ordered sums, far below the gaps that decide tokens). On CUDA in bf16 a
  // differently ordered sum can flip the bf16 rounding of an activation at any rounding site (a
  // relative change of at most 2^-8 there), so the bound is CudaLogitsMatchTheCpu's: 4.5 sqrt(8 L
  // + 1) 2^-8 of the logits' spread (seen: 0.0075 on logits of spread ~1, seed 2189827360946098122).
  void expect_same_logits(const float* a, const float* b, int n, const std::string& what, int layers = 2) const {
    if (exact()) {
      EXPECT_EQ(0, std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float))) << what;
      return;
    }
    if (dtype() == KV_DTYPE_BF16) {
      double mean = 0, var = 0, worst = 0;
      for (int i = 0; i < n; ++i) mean += a[i] / n;
      for (int i = 0; i < n; ++i) var += (a[i] - mean) * (a[i] - mean) / n;
      for (int i = 0; i < n; ++i) worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
      EXPECT_LE(worst, 4.5 * bf16_rms_bound(layers) * std::sqrt(var)) << what;
      return;
    }
    float scale = 0.f, worst = 0.f;
    for (int i = 0; i < n; ++i) {
      scale = std::max(scale, std::fabs(a[i]));
      worst = std::max(worst, std::fabs(a[i] - b[i]));
    }
    EXPECT_LE(worst, 1e-3f * std::max(1.f, scale)) << what;
  }
};

TEST_P(ModelTest, BatchedStepsEqualSoloSteps) {
  const kv_model_config c = tiny_config(dtype(), true, true);
  std::mt19937_64 rng(seed_for("batched_solo"));
  const std::vector<int> lengths = {5, 1, 12};
  std::vector<std::vector<int32_t>> prompts;
  for (int len : lengths) prompts.push_back(random_tokens(rng, len, c.vocab_size));

  TinyModel batched(c, 7, 4, 128, backend());
  std::vector<int32_t> slots = {0, 1, 2}, start = {0, 0, 0}, num_new, all;
  for (const auto& p : prompts) {
    num_new.push_back(static_cast<int32_t>(p.size()));
    all.insert(all.end(), p.begin(), p.end());
  }
  std::vector<float> batch_logits = step(batched, c.vocab_size, slots, start, num_new, all);
  // Two decode steps for all three together.
  std::vector<int32_t> next = {3, 4, 5};
  std::vector<int32_t> start2 = {5, 1, 12}, ones = {1, 1, 1};
  std::vector<float> batch_decode = step(batched, c.vocab_size, slots, start2, ones, next);

  for (int s = 0; s < 3; ++s) {
    TinyModel solo(c, 7, 4, 128, backend());
    std::vector<float> l = step(solo, c.vocab_size, {2}, {0}, {num_new[s]}, prompts[s]);
    expect_same_logits(l.data(), batch_logits.data() + s * c.vocab_size, c.vocab_size,
                       "prefill logits of sequence " + std::to_string(s) + " solo vs batched");
    std::vector<float> d = step(solo, c.vocab_size, {2}, {start2[s]}, {1}, {next[s]});
    expect_same_logits(d.data(), batch_decode.data() + s * c.vocab_size, c.vocab_size,
                       "decode logits of sequence " + std::to_string(s) + " solo vs batched");
  }
}

TEST_P(ModelTest, ChunkedPrefillEqualsWholePrefill) {
  const kv_model_config c = tiny_config(dtype(), false, false, true);
  std::mt19937_64 rng(seed_for("chunked"));
  std::vector<int32_t> prompt = random_tokens(rng, 70, c.vocab_size);  // crosses a 64-token attention block
  TinyModel whole(c, 11, 4, 128, backend()), chunked(c, 11, 4, 128, backend());
  std::vector<float> a = step(whole, c.vocab_size, {1}, {0}, {70}, prompt);
  std::vector<int32_t> first(prompt.begin(), prompt.begin() + 33), rest(prompt.begin() + 33, prompt.end());
  step(chunked, c.vocab_size, {1}, {0}, {33}, first);
  std::vector<float> b = step(chunked, c.vocab_size, {1}, {33}, {37}, rest);
  expect_same_logits(a.data(), b.data(), c.vocab_size, "whole vs chunked prefill");
}

TEST_P(ModelTest, CausalityLaterTokensDoNotChangeEarlierLogits) {
  const kv_model_config c = tiny_config(dtype());
  TinyModel m1(c, 3, 4, 128, backend()), m2(c, 3, 4, 128, backend());
  std::vector<float> a = step(m1, c.vocab_size, {0}, {0}, {6}, {1, 2, 3, 4, 5, 6});
  std::vector<float> b = step(m2, c.vocab_size, {0}, {0}, {6}, {1, 2, 3, 4, 5, 7});
  std::vector<float> a5 = step(m1, c.vocab_size, {1}, {0}, {5}, {1, 2, 3, 4, 5});
  EXPECT_NE(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "the last token must matter";
  // The 5-token prefix in a fresh slot of the same model gives its own logits; the prefix of
  // the 6-token runs must not depend on token 6: compare slot 1 of m1 with a 5-token run of m2.
  std::vector<float> b5 = step(m2, c.vocab_size, {1}, {0}, {5}, {1, 2, 3, 4, 5});
  expect_same_logits(a5.data(), b5.data(), c.vocab_size, "the same 5-token prefix");
}

TEST_P(ModelTest, SamplingIsAPureFunctionOfSeedRequestAndPosition) {
  const kv_model_config c = tiny_config(dtype());
  TinyModel m(c, 5, 4, 64, backend());
  std::vector<float> temp(3, 1.0f);
  std::vector<uint64_t> seeds = {42, 42, 43};
  std::vector<int32_t> got;
  // Same prompt in three slots; requests 100, 101, 102 (see step()).
  step(m, c.vocab_size, {0, 1, 2}, {0, 0, 0}, {4, 4, 4}, {9, 8, 7, 6, 9, 8, 7, 6, 9, 8, 7, 6}, &got, &temp, &seeds);
  TinyModel m2(c, 5, 4, 64, backend());
  std::vector<int32_t> again;
  std::vector<float> temp1(1, 1.0f);
  std::vector<uint64_t> seed1 = {42};
  // Slot and batch differ; request id 100 and position are the same as the first sequence's.
  step(m2, c.vocab_size, {3}, {0}, {4}, {9, 8, 7, 6}, &again, &temp1, &seed1);
  EXPECT_EQ(got[0], again[0]);
  for (int32_t t : got) EXPECT_TRUE(t >= 0 && t < c.vocab_size);
}

TEST_P(ModelTest, GreedyAndDegenerateFiltersAgree) {
  const kv_model_config c = tiny_config(dtype());
  TinyModel m(c, 9, 8, 64, backend());
  const std::vector<int32_t> prompt = {1, 5, 9, 13};
  auto run = [&](int slot, float temperature, int32_t top_k, float top_p, float min_p, float rep) {
    int32_t out = -1;
    const int32_t s = slot, start = 0, n = 4;
    const uint64_t seed = 1234, req = 77;
    std::vector<float> logits(c.vocab_size);
    KVT_CHECK(kv_model_step(m.model, m.cache, 1, &s, &start, &n, prompt.data(), &temperature, &top_k, &top_p, &min_p,
                            &rep, &seed, &req, &out, logits.data()));
    return std::make_pair(out, logits);
  };
  auto [greedy, logits] = run(0, 0.f, 0, 1.f, 0.f, 1.f);
  const int32_t argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_EQ(greedy, argmax);
  EXPECT_EQ(run(1, 0.7f, 1, 1.f, 0.f, 1.f).first, argmax) << "top_k = 1 keeps only the argmax";
  EXPECT_EQ(run(2, 1.3f, 0, 1e-6f, 0.f, 1.f).first, argmax) << "a tiny top_p keeps only the argmax";
  EXPECT_EQ(run(3, 1.0f, 0, 1.f, 1.f, 1.f).first, argmax) << "min_p = 1 keeps only the argmax";
  // A huge repetition penalty pushes every prompt token out of the greedy choice.
  const int32_t penalized = run(4, 0.f, 0, 1.f, 0.f, 1e6f).first;
  for (int32_t t : prompt) EXPECT_NE(penalized, t);
}

TEST_P(ModelTest, BadStepsAreRefusedByNameAndLeaveTheCacheUsable) {
  const kv_model_config c = tiny_config(dtype());
  TinyModel m(c, 1, 2, 16, backend());
  const int32_t tokens[3] = {1, 2, 3};
  auto expect = [&](int32_t n, std::vector<int32_t> slots, std::vector<int32_t> start, std::vector<int32_t> num,
                    const int32_t* toks, const char* needle) {
    EXPECT_EQ(kv_model_step(m.model, m.cache, n, slots.data(), start.data(), num.data(), toks, nullptr, nullptr,
                            nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
              KV_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(last_error().find(needle), std::string::npos) << last_error();
  };
  expect(1, {2}, {0}, {1}, tokens, "slots[0]=2 is outside [0, 2)");
  expect(2, {0, 0}, {0, 0}, {1, 1}, tokens, "appears twice");
  expect(1, {0}, {15}, {2}, tokens, "past the slot capacity of 16");
  expect(1, {0}, {0}, {0}, tokens, "num_new[0]=0");
  const int32_t bad_token[1] = {c.vocab_size};
  expect(1, {0}, {0}, {1}, bad_token, "outside the vocabulary");
  // The cache still works.
  std::vector<float> logits = step(m, c.vocab_size, {0}, {0}, {3}, {1, 2, 3});
  EXPECT_FALSE(std::isnan(logits[0]));
}

TEST_P(ModelTest, CudaLogitsMatchTheCpu) {
  if (backend() != KV_BACKEND_CUDA) GTEST_SKIP() << "compares CUDA with the CPU";
  // The same weights on both. In fp32 they differ by the order of sums only. In bf16 CUDA
  // rounds what feeds a matrix product or the cache to bf16 (as transformers does), the CPU
  // keeps activations in fp32: each rounding site perturbs its activation by a relative error
  // of at most 2^-8 (bf16 keeps 8 significant bits), and the sites (per layer: the two norm
  // outputs, q and the attention probabilities P of the tensor-core attention, K, V, the
  // attention output, the SwiGLU product; then the final norm) are independent, so they add in
  // quadrature: rms(diff) / std(logits) <= sqrt(8 L + 1) 2^-8 (bf16_rms_bound). The largest of
  // the ~100 logits stays within 4.5 times that (a 4.5-sigma event is ~1e-5 a logit). Counting
  // six sites (q and P left out) was too tight: seed 12180527208245887804 measured 0.01457
  // against sqrt(13) 2^-8 = 0.01408.
  for (int qk : {0, 1}) {
    const kv_model_config c = tiny_config(dtype(), qk, !qk, qk);
    TinyModel cpu(c, 21, 2, 128, KV_BACKEND_CPU), gpu(c, 21, 2, 128, KV_BACKEND_CUDA);
    std::mt19937_64 rng(seed_for("cuda_vs_cpu"));
    std::vector<int32_t> prompt = random_tokens(rng, 50, c.vocab_size);
    std::vector<float> a = step(cpu, c.vocab_size, {0}, {0}, {50}, prompt);
    std::vector<float> b = step(gpu, c.vocab_size, {0}, {0}, {50}, prompt);
    // Then two decode steps (CUDA: the GEMV projections, split-KV attention, a graph capture).
    for (int i = 0; i < 2; ++i) {
      const std::vector<float> da = step(cpu, c.vocab_size, {0}, {50 + i}, {1}, {prompt[i]});
      const std::vector<float> db = step(gpu, c.vocab_size, {0}, {50 + i}, {1}, {prompt[i]});
      a.insert(a.end(), da.begin(), da.end());
      b.insert(b.end(), db.begin(), db.end());
    }
    double mean = 0, var = 0, worst = 0, sq = 0;
    for (float x : a) mean += x / a.size();
    for (float x : a) var += (x - mean) * (x - mean) / a.size();
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::fabs(a[i] - b[i]);
      worst = std::max(worst, d);
      sq += d * d / a.size();
    }
    const double std_logits = std::sqrt(var), rms = std::sqrt(sq) / std_logits, relative = worst / std_logits;
    const double rms_bound = dtype() == KV_DTYPE_F32 ? 2e-5 : bf16_rms_bound(c.num_layers);
    EXPECT_LT(rms, rms_bound) << "rms |cuda - cpu| / std(logits), qk_norm=" << qk;
    EXPECT_LT(relative, 4.5 * rms_bound) << "max |cuda - cpu| / std(logits), qk_norm=" << qk;
  }
}

// Decode steps on CUDA replay captured graphs and (bf16) run their projections with the GEMV
// kernel; neither may change a result: graphs replay the very kernels (bit for bit), the GEMV
// differs from cuBLAS by the order of fp32 sums only.
TEST_P(ModelTest, CudaGraphsAndGemvKeepTheResults) {
  if (backend() != KV_BACKEND_CUDA) GTEST_SKIP() << "CUDA options";
  // Wide enough that the GEMV splits k over 2 and 4 warps, with an odd vocabulary (odd rows).
  kv_model_config c = tiny_config(dtype(), true, true);
  c.hidden_size = 1024;
  c.intermediate_size = 2816;
  c.num_q_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 128;
  std::mt19937_64 rng(seed_for("graphs"));
  const std::vector<int32_t> prompt = random_tokens(rng, 9, c.vocab_size);
  const std::vector<int32_t> decode_tokens = random_tokens(rng, 24, c.vocab_size);
  // Three identical models: graphs + PDL + GEMV (the defaults), eager + GEMV, eager + cuBLAS only.
  auto run = [&](int graphs, int gemv_rows, int pdl) {
    TinyModel m(c, 31, 3, 256, KV_BACKEND_CUDA);  // 256 positions: split-KV attention
    KVT_CHECK(kv_model_set_option(m.model, "cuda_graphs", graphs));
    KVT_CHECK(kv_model_set_option(m.model, "pdl", pdl));
    KVT_CHECK(kv_model_set_option(m.model, "gemv_max_rows", gemv_rows));
    std::vector<float> all;
    std::vector<float> l = step(m, c.vocab_size, {0, 1, 2}, {0, 0, 0}, {3, 3, 3}, prompt);
    all.insert(all.end(), l.begin(), l.end());
    // Batches of 3, 2 and 1 alternate so each shape is seen again (captured, then replayed).
    std::vector<int32_t> length = {3, 3, 3};
    size_t next = 0;
    for (int round = 0; round < 4; ++round) {
      for (int n : {3, 2, 1}) {
        std::vector<int32_t> slots, start, num, toks;
        for (int s = 0; s < n; ++s) {
          slots.push_back(s);
          start.push_back(length[s]++);
          num.push_back(1);
          toks.push_back(decode_tokens[next++ % decode_tokens.size()]);
        }
        std::vector<int32_t> sampled;
        l = step(m, c.vocab_size, slots, start, num, toks, &sampled);
        all.insert(all.end(), l.begin(), l.end());
        for (int32_t t : sampled) EXPECT_TRUE(t >= 0 && t < c.vocab_size) << "sampled " << t;
      }
    }
    return all;
  };
  // Graphs and programmatic dependent launch (the defaults) against plain eager launches.
  const std::vector<float> graphed = run(1, 8, 1), eager = run(0, 8, 0), cublas = run(0, 0, 0);
  ASSERT_EQ(graphed.size(), eager.size());
  EXPECT_EQ(0, std::memcmp(graphed.data(), eager.data(), graphed.size() * sizeof(float)))
      << "graph replay changed a logit";
  // The GEMV and cuBLAS sum in different orders; in bf16 a last-bit difference can flip the
  // bf16 rounding of an activation, so the bound is that of CudaLogitsMatchTheCpu (which
  // assumes every activation rounded, far more than a few flips).
  double mean = 0, var = 0, sq = 0, worst = 0;
  for (float x : cublas) mean += x / cublas.size();
  for (float x : cublas) var += (x - mean) * (x - mean) / cublas.size();
  for (size_t i = 0; i < eager.size(); ++i) {
    const double d = std::fabs(eager[i] - cublas[i]);
    worst = std::max(worst, d);
    sq += d * d / eager.size();
  }
  const double rms_bound = dtype() == KV_DTYPE_F32 ? 2e-5 : bf16_rms_bound(c.num_layers);
  EXPECT_LT(std::sqrt(sq / var), rms_bound) << "GEMV against cuBLAS: rms / std(logits)";
  EXPECT_LT(worst / std::sqrt(var), 4.5 * rms_bound) << "GEMV against cuBLAS: max / std(logits)";
}

TEST_P(ModelTest, OptionsAndTheProfile) {
  const kv_model_config c = tiny_config(dtype());
  TinyModel m(c, 5, 1, 16, backend());
  EXPECT_EQ(kv_model_set_option(m.model, "warp_speed", 1), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("unknown model option 'warp_speed'"), std::string::npos) << last_error();
  EXPECT_EQ(kv_model_set_option(m.model, "gemv_max_rows", 17), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("gemv_max_rows=17 must be in [0, 16]"), std::string::npos) << last_error();
  EXPECT_EQ(kv_model_set_option(m.model, "cuda_graphs", 2), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kv_model_set_option(m.model, nullptr, 1), KV_STATUS_INVALID_ARGUMENT);
  KVT_CHECK(kv_model_set_option(m.model, "profile", 1));
  step(m, c.vocab_size, {0}, {0}, {4}, {1, 2, 3, 4});
  step(m, c.vocab_size, {0}, {4}, {1}, {5});
  uint64_t needed = 0;
  KVT_CHECK(kv_model_profile_read(m.model, nullptr, 0, &needed));
  std::string text(needed, '\0');
  KVT_CHECK(kv_model_profile_read(m.model, text.data(), needed, nullptr));
  text.resize(needed - 1);
  EXPECT_EQ(text.rfind("kind stage calls total_ms launch_ms\n", 0), 0u) << text;
  if (backend() == KV_BACKEND_CUDA) {
    // Two layers: each per-layer stage was timed twice in the decode step.
    EXPECT_NE(text.find("decode qkv_proj 2 "), std::string::npos) << text;
    EXPECT_NE(text.find("prefill attention 2 "), std::string::npos) << text;
    EXPECT_NE(text.find("decode host_step 1 "), std::string::npos) << text;
  }
  char small[8];
  KVT_CHECK(kv_model_profile_read(m.model, small, sizeof small, nullptr));
  EXPECT_EQ(std::string(small), "kind st");
}

std::vector<ModelParam> model_params() {
  std::vector<ModelParam> p;
  for (kv_backend b : {KV_BACKEND_CPU, KV_BACKEND_CUDA})
    for (kv_dtype d : {KV_DTYPE_F32, KV_DTYPE_BF16}) p.push_back({b, d});
  return p;
}

std::string model_param_name(const ::testing::TestParamInfo<ModelParam>& param_info) {
  return std::string(param_info.param.backend == KV_BACKEND_CUDA ? "cuda_" : "cpu_") +
         (param_info.param.dtype == KV_DTYPE_BF16 ? "bf16" : "f32");
}

INSTANTIATE_TEST_SUITE_P(Backends, ModelTest, ::testing::ValuesIn(model_params()), model_param_name);

// ---------------------------------------------------------------- paged caches

// The paged step on every backend: on the CPU it equals the slot step bit for bit (it gathers
// the same rows in the same order); on CUDA the paged attention kernels sum in another order
// than the slot step's, so logits agree within expect_same_logits' bounds and sampled tokens
// wherever the slot run's decision has a margin above twice that bound.
class ModelPagedTest : public ModelTest {
 protected:
  // The bound expect_same_logits applies on CUDA, for logits like ref[0, n).
  double tolerance(const float* ref, int n, int layers = 2) const {
    if (dtype() == KV_DTYPE_BF16) {
      double mean = 0, var = 0;
      for (int i = 0; i < n; ++i) mean += ref[i] / n;
      for (int i = 0; i < n; ++i) var += (ref[i] - mean) * (ref[i] - mean) / n;
      return 4.5 * bf16_rms_bound(layers) * std::sqrt(var);
    }
    float scale = 0.f;
    for (int i = 0; i < n; ++i) scale = std::max(scale, std::fabs(ref[i]));
    return 1e-3 * std::max(1.f, scale);
  }

  void run_paged_against_slots(int32_t page_tokens, int32_t quest_top_k, bool expect_equal);
};

// The same model on a slot cache and on a paged cache whose pages are scattered at random.
struct PagedPair {
  TinyModel slot;
  kv_kv_cache_t paged = nullptr;
  int32_t page_tokens;
  int32_t table_stride;
  std::vector<int32_t> tables;  // [seqs][table_stride], a random permutation of the pool
  static constexpr float kPenalty = 1.3f;  // every step samples greedily after this repetition penalty
  PagedPair(const kv_model_config& c, uint64_t seed, int seqs, int32_t page_tokens_, int32_t capacity,
            std::mt19937_64& rng, bool summaries, kv_backend backend)
      : slot(c, seed, seqs, capacity, backend), page_tokens(page_tokens_),
        table_stride((capacity + page_tokens_ - 1) / page_tokens_) {
    const int32_t pages = seqs * table_stride + 3;  // a few pages nobody owns
    KVT_CHECK(kv_paged_cache_init(slot.model, pages, page_tokens, summaries ? 1 : 0, &paged));
    std::vector<int32_t> perm(pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    tables.assign(perm.begin(), perm.begin() + seqs * table_stride);
  }
  ~PagedPair() { kv_kv_cache_free(paged); }
  PagedPair(const PagedPair&) = delete;
  PagedPair& operator=(const PagedPair&) = delete;

  // One paged step of sequences `seqs` (their slot index); logits [n][vocab], sampled tokens out.
  std::vector<float> step_paged(int vocab, const std::vector<int32_t>& seqs, const std::vector<int32_t>& start,
                                const std::vector<int32_t>& num_new, const std::vector<int32_t>& tokens,
                                const kv_step_policy* policy, std::vector<int32_t>* sampled = nullptr) {
    const int32_t n = static_cast<int32_t>(seqs.size());
    std::vector<int32_t> table;
    for (int32_t s : seqs) table.insert(table.end(), tables.begin() + s * table_stride,
                                        tables.begin() + (s + 1) * table_stride);
    std::vector<float> logits(static_cast<size_t>(n) * vocab, std::nanf(""));
    std::vector<int32_t> out(n, -1);
    std::vector<float> penalty(n, kPenalty);
    std::vector<uint64_t> request(n);
    std::iota(request.begin(), request.end(), 100);
    KVT_CHECK(kv_model_step_paged(slot.model, paged, n, table.data(), table_stride, start.data(), num_new.data(),
                                  tokens.data(), policy, nullptr, nullptr, nullptr, nullptr, penalty.data(), nullptr,
                                  request.data(), out.data(), logits.data()));
    if (sampled) *sampled = out;
    for (float v : logits) EXPECT_FALSE(std::isnan(v)) << "a logit was not written";
    for (int32_t t : out) EXPECT_TRUE(t >= 0 && t < vocab) << "sampled " << t;
    return logits;
  }

  std::vector<float> step_slot(int vocab, const std::vector<int32_t>& seqs, const std::vector<int32_t>& start,
                               const std::vector<int32_t>& num_new, const std::vector<int32_t>& tokens,
                               std::vector<int32_t>* sampled = nullptr) {
    const int32_t n = static_cast<int32_t>(seqs.size());
    std::vector<float> logits(static_cast<size_t>(n) * vocab, std::nanf(""));
    std::vector<int32_t> out(n, -1);
    std::vector<float> penalty(n, kPenalty);
    std::vector<uint64_t> request(n);
    std::iota(request.begin(), request.end(), 100);
    KVT_CHECK(kv_model_step(slot.model, slot.cache, n, seqs.data(), start.data(), num_new.data(), tokens.data(),
                            nullptr, nullptr, nullptr, nullptr, penalty.data(), nullptr, request.data(), out.data(),
                            logits.data()));
    if (sampled) *sampled = out;
    return logits;
  }
};

kv_model_config gqa_config(kv_dtype dtype) {
  kv_model_config c = tiny_config(dtype, true, true);
  c.num_q_heads = 4;
  c.num_kv_heads = 2;
  return c;
}

// The greedy choice after the repetition penalty over `history`, and its margin over the runner-up.
std::pair<int32_t, double> penalized_argmax(const float* logits, int vocab, const std::vector<int32_t>& history) {
  std::vector<double> p(logits, logits + vocab);
  std::vector<bool> seen(static_cast<size_t>(vocab), false);
  for (int32_t t : history) seen[static_cast<size_t>(t)] = true;
  for (int i = 0; i < vocab; ++i)
    if (seen[static_cast<size_t>(i)]) p[i] = p[i] > 0 ? p[i] / PagedPair::kPenalty : p[i] * PagedPair::kPenalty;
  const int32_t best = static_cast<int32_t>(std::max_element(p.begin(), p.end()) - p.begin());
  double second = -1e300;
  for (int i = 0; i < vocab; ++i)
    if (i != best) second = std::max(second, p[i]);
  return {best, p[best] - second};
}

// Prefill chunks and decodes of three sequences, interleaved; the paged cache must give the slot
// cache's logits and tokens (bit for bit on the CPU). quest_top_k > 0 runs decodes under Quest
// with that K; expect_equal = false expects some difference instead (a K below the pages).
void ModelPagedTest::run_paged_against_slots(int32_t page_tokens, int32_t quest_top_k, bool expect_equal) {
  const kv_model_config c = gqa_config(dtype());
  const uint64_t seed = seed_for("paged_vs_slot_" + std::to_string(page_tokens) + "_" + std::to_string(quest_top_k));
  std::mt19937_64 rng(seed);
  PagedPair pair(c, 5, 3, page_tokens, 160, rng, quest_top_k > 0, backend());
  const kv_step_policy quest{KV_SELECTION_QUEST, quest_top_k};
  const kv_step_policy* policy = quest_top_k > 0 ? &quest : nullptr;
  std::vector<std::vector<int32_t>> history(3);
  bool any_difference = false;
  for (int round = 0; round < 14; ++round) {
    std::vector<int32_t> seqs, start, num_new, tokens;
    for (int32_t s = 0; s < 3; ++s) {
      const int32_t len = static_cast<int32_t>(history[s].size());
      if (rng() % 4 == 0 && len > 0) continue;  // this sequence sits the step out
      const int32_t n = len == 0 || rng() % 3 == 0 ? 1 + static_cast<int32_t>(rng() % 23) : 1;
      if (len + n > 150) continue;
      seqs.push_back(s);
      start.push_back(len);
      num_new.push_back(n);
      for (int32_t t : random_tokens(rng, n, c.vocab_size)) {
        tokens.push_back(t);
        history[s].push_back(t);
      }
    }
    if (seqs.empty()) continue;
    std::vector<int32_t> sampled_paged, sampled_slot;
    std::vector<float> a = pair.step_paged(c.vocab_size, seqs, start, num_new, tokens, policy, &sampled_paged);
    std::vector<float> b = pair.step_slot(c.vocab_size, seqs, start, num_new, tokens, &sampled_slot);
    const std::string what = "round " + std::to_string(round) + " (seed " + std::to_string(seed) + ")";
    if (exact()) {
      const bool same = std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
      if (expect_equal) {
        EXPECT_TRUE(same) << what << ": paged logits differ from the slot cache's";
        EXPECT_EQ(sampled_paged, sampled_slot) << what;
      }
      any_difference |= !same;
      continue;
    }
    for (size_t i = 0; i < seqs.size(); ++i) {
      const float* pa = a.data() + i * c.vocab_size;
      const float* pb = b.data() + i * c.vocab_size;
      const double tol = tolerance(pb, c.vocab_size);
      double worst = 0;
      for (int v = 0; v < c.vocab_size; ++v) worst = std::max(worst, static_cast<double>(std::fabs(pa[v] - pb[v])));
      if (expect_equal) {
        EXPECT_LE(worst, tol) << what << ", sequence " << seqs[i] << ": paged logits against the slot cache's";
        const auto [best, margin] = penalized_argmax(pb, c.vocab_size, history[static_cast<size_t>(seqs[i])]);
        EXPECT_EQ(best, sampled_slot[i]) << what << ": the slot step's sampler";
        if (margin > 2 * tol) {
          EXPECT_EQ(sampled_paged[i], sampled_slot[i]) << what << ", sequence " << seqs[i];
        }
      }
      any_difference |= worst > tol;
    }
  }
  if (!expect_equal) {
    EXPECT_TRUE(any_difference) << "Quest with a small K changed nothing (seed " << seed << ")";
  }
}

TEST_P(ModelPagedTest, PagedCacheEqualsSlotCache) {
  for (int32_t page_tokens : {1, 5, 16}) run_paged_against_slots(page_tokens, 0, true);
}

TEST_P(ModelPagedTest, QuestWithKAtLeastThePagesEqualsFullAttention) {
  // 150 tokens of pages of 5 are at most 30 pages: K = 30 always selects everything.
  run_paged_against_slots(5, 30, true);
}

TEST_P(ModelPagedTest, QuestWithASmallKAttendsFewerPages) {
  run_paged_against_slots(4, 2, false);
}

TEST_P(ModelPagedTest, ACopiedPageLetsTwoSequencesShareAPrefix) {
  // Sequence 0 prefills 13 tokens into pages of 4 (3 full + 1 partial). Sequence 1 shares the
  // full pages, gets a copy of the partial one, and continues with other tokens: its logits
  // equal a solo run of its own tokens.
  const kv_model_config c = gqa_config(dtype());
  std::mt19937_64 rng(seed_for("paged_copy"));
  TinyModel m(c, 9, 1, 64, backend());
  kv_kv_cache_t cache = nullptr;
  KVT_CHECK(kv_paged_cache_init(m.model, 16, 4, 0, &cache));
  std::vector<int32_t> prompt = random_tokens(rng, 13, c.vocab_size), cont = random_tokens(rng, 6, c.vocab_size);
  const int32_t stride = 8;
  std::vector<int32_t> t0 = {0, 1, 2, 3, 4, 5, 6, 7}, t1 = {0, 1, 2, 9, 10, 11, 12, 13};
  std::vector<float> logits(c.vocab_size);
  auto run = [&](const std::vector<int32_t>& table, int32_t start, const std::vector<int32_t>& toks) {
    const int32_t n = static_cast<int32_t>(toks.size());
    KVT_CHECK(kv_model_step_paged(m.model, cache, 1, table.data(), stride, &start, &n, toks.data(), nullptr, nullptr,
                                  nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, logits.data()));
    return logits;
  };
  run(t0, 0, prompt);
  const int32_t src = 3, dst = 9;
  KVT_CHECK(kv_paged_cache_copy_pages(cache, &src, &dst, 1));
  std::vector<float> shared = run(t1, 13, cont);
  // Solo: the same 19 tokens in a slot cache.
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), cont.begin(), cont.end());
  std::vector<float> solo = step(m, c.vocab_size, {0}, {0}, {19}, all);
  expect_same_logits(shared.data(), solo.data(), c.vocab_size, "the sequence on a copied page");
  // Sequence 0 is untouched by sequence 1's writes: its decode equals a solo decode.
  std::vector<int32_t> next = {7};
  std::vector<float> own = run(t0, 13, next);
  TinyModel solo0(c, 9, 1, 64, backend());
  step(solo0, c.vocab_size, {0}, {0}, {13}, prompt);
  std::vector<float> want = step(solo0, c.vocab_size, {0}, {13}, {1}, next);
  expect_same_logits(own.data(), want.data(), c.vocab_size, "the sequence whose page was copied");
  kv_kv_cache_free(cache);
}

// Paged decode steps replay captured graphs (page tables and lengths live in the plan on the
// device; the table width is bucketed to powers of two): the logits equal eager launches bit
// for bit, with full attention and under Quest, while the sequences cross page and bucket edges.
TEST_P(ModelPagedTest, PagedDecodeGraphsReplayExactly) {
  if (backend() != KV_BACKEND_CUDA) GTEST_SKIP() << "CUDA graphs";
  const kv_model_config c = gqa_config(dtype());
  std::mt19937_64 rng(seed_for("paged_graphs"));
  const std::vector<int32_t> prompt = random_tokens(rng, 20, c.vocab_size);
  const std::vector<int32_t> decode_tokens = random_tokens(rng, 31, c.vocab_size);
  auto run = [&](int graphs, const kv_step_policy* policy) {
    std::mt19937_64 layout(7);  // the same scattered pages for every run
    PagedPair pair(c, 13, 3, 4, 160, layout, true, backend());
    KVT_CHECK(kv_model_set_option(pair.slot.model, "cuda_graphs", graphs));
    std::vector<float> all = pair.step_paged(c.vocab_size, {0, 1, 2}, {0, 0, 0}, {7, 6, 7}, prompt, policy);
    std::vector<int32_t> length = {7, 6, 7};
    size_t next = 0;
    for (int round = 0; round < 12; ++round) {
      for (int n : {3, 2}) {
        std::vector<int32_t> seqs, start, num, toks;
        for (int s = 0; s < n; ++s) {
          seqs.push_back(s);
          start.push_back(length[s]++);
          num.push_back(1);
          toks.push_back(decode_tokens[next++ % decode_tokens.size()]);
        }
        std::vector<float> l = pair.step_paged(c.vocab_size, seqs, start, num, toks, policy);
        all.insert(all.end(), l.begin(), l.end());
      }
    }
    return all;
  };
  const kv_step_policy quest{KV_SELECTION_QUEST, 3};
  for (const kv_step_policy* policy : {static_cast<const kv_step_policy*>(nullptr), &quest}) {
    const std::vector<float> graphed = run(1, policy), eager = run(0, policy);
    ASSERT_EQ(graphed.size(), eager.size());
    EXPECT_EQ(0, std::memcmp(graphed.data(), eager.data(), graphed.size() * sizeof(float)))
        << "graph replay changed a logit (" << (policy ? "quest" : "full") << ")";
  }
}

TEST_P(ModelPagedTest, BadPagedStepsAreRefusedByName) {
  const kv_model_config c = gqa_config(dtype());
  TinyModel m(c, 1, 1, 16, backend());
  kv_kv_cache_t cache = nullptr;
  EXPECT_EQ(kv_paged_cache_init(m.model, 0, 16, 0, &cache), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("num_pages=0"), std::string::npos) << last_error();
  EXPECT_EQ(kv_paged_cache_init(m.model, 4, 300, 0, &cache), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("page_tokens=300"), std::string::npos) << last_error();
  EXPECT_EQ(kv_paged_cache_init(m.model, 1 << 28, 16, 0, &cache), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("must be below 2^31"), std::string::npos) << last_error();
  KVT_CHECK(kv_paged_cache_init(m.model, 8, 4, 0, &cache));
  const int32_t tokens[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  auto expect = [&](int32_t n, std::vector<int32_t> table, int32_t stride, std::vector<int32_t> start,
                    std::vector<int32_t> num, const kv_step_policy* policy, const char* needle) {
    EXPECT_EQ(kv_model_step_paged(m.model, cache, n, table.data(), stride, start.data(), num.data(), tokens, policy,
                                  nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
              KV_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(last_error().find(needle), std::string::npos) << last_error();
  };
  expect(1, {8}, 1, {0}, {1}, nullptr, "is outside [0, num_pages = 8)");
  expect(1, {0}, 1, {0}, {5}, nullptr, "past the page table's capacity");
  expect(2, {0, 1, 0, 2}, 2, {0, 0}, {2, 2}, nullptr, "written by two sequences");
  expect(2, {0, 1, 0, 2}, 2, {4, 0}, {1, 2}, nullptr, "while another sequence of the step writes it");
  const kv_step_policy quest{KV_SELECTION_QUEST, 2};
  expect(1, {0, 1}, 2, {0}, {1}, &quest, "Quest needs key summaries");
  const kv_step_policy bad{7, 0};
  expect(1, {0, 1}, 2, {0}, {1}, &bad, "policy->selection=7");
  const int32_t slot = 0, start = 0, one = 1;
  EXPECT_EQ(kv_model_step(m.model, cache, 1, &slot, &start, &one, tokens, nullptr, nullptr, nullptr, nullptr, nullptr,
                          nullptr, nullptr, nullptr, nullptr),
            KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("paged cache"), std::string::npos) << last_error();
  const int32_t page = 0;
  EXPECT_EQ(kv_model_step_paged(m.model, m.cache, 1, &page, 1, &start, &one, tokens, nullptr, nullptr, nullptr, nullptr,
                                nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("slot cache"), std::string::npos) << last_error();
  const int32_t src = 9, dst = 1;
  EXPECT_EQ(kv_paged_cache_copy_pages(cache, &src, &dst, 1), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("src[0]=9"), std::string::npos) << last_error();
  // The refusals left the cache usable: a good step runs.
  std::vector<float> logits(c.vocab_size, std::nanf(""));
  const int32_t table[2] = {3, 5}, four = 4;
  KVT_CHECK(kv_model_step_paged(m.model, cache, 1, table, 2, &start, &four, tokens, nullptr, nullptr, nullptr, nullptr,
                                nullptr, nullptr, nullptr, nullptr, nullptr, logits.data()));
  for (float v : logits) EXPECT_FALSE(std::isnan(v));
  kv_kv_cache_free(cache);
}

// A quantized cache (Kitty's layout: a 32-token sink, groups of 128 tokens packed once they are
// older than the newest 128): sequence A quantizes on that schedule; sequence B has the same
// tokens in pages only, and after each step that packs A's groups, A's blocks are unpacked into
// B's pages (kv_paged_cache_unpack_blocks). From then on both attend the same dequantized values
// (B through the plain paged path), so their logits agree: bit for bit on the CPU in fp32, within
// the bf16 bounds otherwise. Sequence C keeps the original tokens' K and V and must come out
// different, or the quantization was not applied.
TEST_P(ModelPagedTest, QuantizedCacheAttendsTheDequantizedGroups) {
  if (backend() == KV_BACKEND_CUDA && dtype() == KV_DTYPE_F32) GTEST_SKIP() << "quantized caches on CUDA are bf16";
  kv_model_config c = gqa_config(dtype());
  c.max_positions = 1024;
  const uint64_t seed = seed_for("quantized_cache_step");
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  TinyModel m(c, 11, 1, 16, backend());
  const int32_t P = 16, G = 128, sink = 32, L = 620;
  const kv_quant_format fmt{G, c.head_dim, c.head_dim / 4, 0};
  const int32_t stride = (L + P - 1) / P + 1, blocks_cap = 8;
  kv_kv_cache_t cache = nullptr;
  KVT_CHECK(kv_paged_cache_init_quant(m.model, 3 * stride + 2, P, 0, &fmt, sink, 2 * blocks_cap, &cache));
  std::vector<int32_t> perm(3 * stride + 2);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> tables(perm.begin(), perm.begin() + 3 * stride);  // A, B, C rows
  std::vector<int32_t> qblocks = {9, 2, 14, 5, 0, 11, 7, 3};             // A's groups
  const std::vector<int32_t> tokens = random_tokens(rng, L, c.vocab_size);
  int32_t len = 0, packed = 0;
  bool differs_from_c = false;
  const std::vector<int32_t> chunks = {300, 200};
  for (int round = 0; len < L; ++round) {
    const int32_t n = round < static_cast<int>(chunks.size()) ? chunks[round] : 1;
    const int32_t end = len + n;
    const int32_t after = std::max(packed, std::max(0, (end - sink) / G - 1));
    std::vector<int32_t> start(3, len), num(3, n), toks;
    for (int i = 0; i < 3; ++i) toks.insert(toks.end(), tokens.begin() + len, tokens.begin() + end);
    std::vector<int32_t> qtab(3 * blocks_cap, 0), before = {packed, 0, 0}, aft = {after, 0, 0};
    std::copy(qblocks.begin(), qblocks.end(), qtab.begin());
    std::vector<float> logits(static_cast<size_t>(3) * c.vocab_size, std::nanf(""));
    KVT_CHECK(kv_model_step_paged_quant(m.model, cache, 3, tables.data(), stride, start.data(), num.data(), toks.data(),
                                        nullptr, qtab.data(), blocks_cap, before.data(), aft.data(), nullptr, nullptr,
                                        nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, logits.data()));
    for (float v : logits) ASSERT_FALSE(std::isnan(v)) << "round " << round << ": a logit was not written";
    const float* la = logits.data();
    const float* lb = logits.data() + c.vocab_size;
    const float* lc = logits.data() + 2 * c.vocab_size;
    const std::string what = "round " + std::to_string(round) + " (len " + std::to_string(end) + ", " +
                             std::to_string(packed) + " groups quantized before it)";
    if (exact() && dtype() == KV_DTYPE_F32) {
      EXPECT_EQ(0, std::memcmp(la, lb, c.vocab_size * sizeof(float))) << what << ": A and B differ";
    } else {
      const double tol = tolerance(lb, c.vocab_size);
      double worst = 0;
      for (int v = 0; v < c.vocab_size; ++v) worst = std::max(worst, static_cast<double>(std::fabs(la[v] - lb[v])));
      EXPECT_LE(worst, tol) << what << ": A against B";
    }
    if (packed > 0) {
      double worst_c = 0;
      for (int v = 0; v < c.vocab_size; ++v) worst_c = std::max(worst_c, static_cast<double>(std::fabs(la[v] - lc[v])));
      differs_from_c |= worst_c > tolerance(lc, c.vocab_size);
    }
    // A's newly packed groups, unpacked into B's pages of the same tokens.
    if (after > packed) {
      std::vector<int32_t> blks(qblocks.begin() + packed, qblocks.begin() + after), pages;
      for (int32_t g = packed; g < after; ++g)
        for (int32_t i = 0; i < G / P; ++i) pages.push_back(tables[stride + (sink + g * G) / P + i]);
      KVT_CHECK(kv_paged_cache_unpack_blocks(cache, blks.data(), pages.data(), static_cast<int32_t>(blks.size())));
    }
    packed = after;
    len = end;
  }
  EXPECT_GE(packed, 3);
  EXPECT_TRUE(differs_from_c) << "the quantized sequence attends exactly what the unquantized one does";
  // Refusals name the problem.
  std::vector<int32_t> qtab(blocks_cap, 0), before = {0}, aft = {5};
  const int32_t start = 0, one = 1, tok = 1;
  EXPECT_NE(kv_model_step_paged_quant(m.model, cache, 1, tables.data(), stride, &start, &one, &tok, nullptr, qtab.data(),
                                      blocks_cap, before.data(), aft.data(), nullptr, nullptr, nullptr, nullptr, nullptr,
                                      nullptr, nullptr, nullptr, nullptr),
            KV_STATUS_OK);
  EXPECT_NE(last_error().find("packing 5 groups"), std::string::npos) << last_error();
  kv_kv_cache_free(cache);
}

INSTANTIATE_TEST_SUITE_P(Backends, ModelPagedTest, ::testing::ValuesIn(model_params()), model_param_name);

TEST(Model, ConfigAndWeightErrorsNameTheProblem) {
  kv_model_config c = tiny_config(KV_DTYPE_F32);
  kv_model_t m = nullptr;
  c.num_q_heads = 4;
  c.num_kv_heads = 3;
  EXPECT_EQ(kv_model_init(KV_BACKEND_CPU, 0, &c, &m), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("num_q_heads=4 is not a multiple of num_kv_heads=3"), std::string::npos) << last_error();
  c = tiny_config(KV_DTYPE_F32);
  c.head_dim = 96;
  EXPECT_EQ(kv_model_init(KV_BACKEND_CPU, 0, &c, &m), KV_STATUS_UNSUPPORTED);
  c = tiny_config(KV_DTYPE_F32);
  c.rope_scaling = KV_ROPE_LLAMA3;
  c.rope_factor = 8.f;
  c.rope_low_freq_factor = 4.f;
  c.rope_high_freq_factor = 1.f;
  c.rope_original_max_positions = 8192;
  EXPECT_EQ(kv_model_init(KV_BACKEND_CPU, 0, &c, &m), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("0 < low < high"), std::string::npos) << last_error();

  c = tiny_config(KV_DTYPE_BF16, false, false, true);
  ASSERT_EQ(kv_model_init(KV_BACKEND_CPU, 0, &c, &m), KV_STATUS_OK) << last_error();
  std::vector<float> w(static_cast<size_t>(c.vocab_size) * c.hidden_size, 0.01f);
  EXPECT_EQ(kv_model_set_weight(m, KV_WEIGHT_EMBED, -1, KV_DTYPE_F32, w.data(), 5), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("model.embed_tokens.weight has 5 elements"), std::string::npos) << last_error();
  EXPECT_EQ(kv_model_set_weight(m, KV_WEIGHT_LM_HEAD, -1, KV_DTYPE_F32, w.data(), w.size()), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("ties word embeddings"), std::string::npos) << last_error();
  EXPECT_EQ(kv_model_set_weight(m, KV_WEIGHT_Q, 2, KV_DTYPE_F32, w.data(), 1), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("layer=2 is outside [0, 2)"), std::string::npos) << last_error();
  ASSERT_EQ(kv_model_set_weight(m, KV_WEIGHT_EMBED, -1, KV_DTYPE_F32, w.data(), w.size()), KV_STATUS_OK);
  EXPECT_EQ(kv_model_check_complete(m), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("model.norm.weight was never set"), std::string::npos) << last_error();
  kv_model_free(m);
}

TEST(Model, WeightsConvertExactlyFromEveryCheckpointDtype) {
  // f16 and bf16 sources hold values fp32 represents exactly: an fp32 model must reproduce
  // logits computed from the same values given as fp32.
  kv_model_config c = tiny_config(KV_DTYPE_F32, false, false, true);
  c.num_layers = 1;
  std::mt19937_64 rng(seed_for("convert"));
  std::normal_distribution<float> dist(0.f, 0.2f);
  auto make = [&](kv_model_t* m, int src) {
    KVT_CHECK(kv_model_init(KV_BACKEND_CPU, 0, &c, m));
    std::mt19937_64 local(1);
    auto put = [&](int kind, int layer, int64_t n, bool norm) {
      std::vector<float> f(n);
      for (auto& x : f) x = norm ? 1.f + 0.1f * dist(local) : dist(local);
      // Values representable in f16 and bf16 alike: bf16's 8 significant bits fit f16's 11, and
      // magnitudes below 2^-10 (near f16's subnormals) become 0.
      for (auto& x : f) x = std::fabs(x) < 1.f / 1024 ? 0.f : from_bf16(to_bf16(x));
      if (src == KV_DTYPE_F32) {
        KVT_CHECK(kv_model_set_weight(*m, kind, layer, src, f.data(), n));
      } else if (src == KV_DTYPE_BF16) {
        std::vector<uint16_t> h(n);
        for (int64_t i = 0; i < n; ++i) h[i] = to_bf16(f[i]);
        KVT_CHECK(kv_model_set_weight(*m, kind, layer, src, h.data(), n));
      } else {
        std::vector<uint16_t> h(n);
        for (int64_t i = 0; i < n; ++i) {  // float -> f16, exact for these values (|x| < 2, 8 bits)
          uint32_t u;
          std::memcpy(&u, &f[i], 4);
          const uint32_t sign = (u >> 16) & 0x8000u;
          const int32_t e = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
          h[i] = (f[i] == 0.f) ? static_cast<uint16_t>(sign)
                               : static_cast<uint16_t>(sign | (static_cast<uint32_t>(e) << 10) | ((u >> 13) & 0x3ffu));
        }
        KVT_CHECK(kv_model_set_weight(*m, kind, layer, src, h.data(), n));
      }
    };
    const int64_t h = c.hidden_size, qd = 3 * 64, kvd = 64, inter = c.intermediate_size;
    put(KV_WEIGHT_EMBED, -1, c.vocab_size * h, false);
    put(KV_WEIGHT_FINAL_NORM, -1, h, true);
    put(KV_WEIGHT_ATTN_NORM, 0, h, true);
    put(KV_WEIGHT_Q, 0, qd * h, false);
    put(KV_WEIGHT_K, 0, kvd * h, false);
    put(KV_WEIGHT_V, 0, kvd * h, false);
    put(KV_WEIGHT_O, 0, h * qd, false);
    put(KV_WEIGHT_MLP_NORM, 0, h, true);
    put(KV_WEIGHT_GATE, 0, inter * h, false);
    put(KV_WEIGHT_UP, 0, inter * h, false);
    put(KV_WEIGHT_DOWN, 0, h * inter, false);
    KVT_CHECK(kv_model_check_complete(*m));
  };
  std::vector<std::vector<float>> logits;
  for (int src : {KV_DTYPE_F32, KV_DTYPE_BF16, KV_DTYPE_F16}) {
    kv_model_t m;
    make(&m, src);
    kv_kv_cache_t cache;
    KVT_CHECK(kv_kv_cache_init(m, 1, 8, &cache));
    std::vector<float> l(c.vocab_size);
    const int32_t slot = 0, start = 0, n = 3, toks[3] = {4, 40, 90};
    KVT_CHECK(kv_model_step(m, cache, 1, &slot, &start, &n, toks, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                            nullptr, nullptr, l.data()));
    logits.push_back(l);
    kv_kv_cache_free(cache);
    kv_model_free(m);
  }
  EXPECT_EQ(logits[0], logits[1]);
  EXPECT_EQ(logits[0], logits[2]);
}

TEST(Model, MemoryReturnsToZeroWhateverTheFreeOrder) {
  int64_t before = 0, after = 0;
  KVT_CHECK(kv_mem_live(KV_MEM_DEVICE, &before, nullptr));
  for (int order = 0; order < 2; ++order) {
    kv_model_config c = tiny_config(KV_DTYPE_BF16);
    kv_model_t m;
    kv_kv_cache_t cache;
    KVT_CHECK(kv_model_init(KV_BACKEND_CPU, 0, &c, &m));
    KVT_CHECK(kv_model_randomize(m, 1, 0.1f));
    KVT_CHECK(kv_kv_cache_init(m, 2, 32, &cache));
    EXPECT_GT(kv_model_weight_bytes(m), 0u);
    EXPECT_EQ(kv_kv_cache_bytes(cache), 2ull * 2 * 2 * 32 * 64 * 2);  // K+V, layers, slots, tokens, kv dims, bf16
    if (order == 0) {
      kv_kv_cache_free(cache);
      kv_model_free(m);
    } else {
      kv_model_free(m);  // released with the last cache
      const int32_t slot = 0, start = 0, n = 1, tok = 1;
      EXPECT_EQ(kv_model_step(m, cache, 1, &slot, &start, &n, &tok, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, nullptr, nullptr, nullptr),
                KV_STATUS_INVALID_ARGUMENT);
      kv_kv_cache_free(cache);
    }
  }
  KVT_CHECK(kv_mem_live(KV_MEM_DEVICE, &after, nullptr));
  EXPECT_EQ(after, before);
}

TEST(Model, CudaModelsWithoutADeviceAreRefusedClearly) {
  if (unavailable_reason({KV_BACKEND_CUDA, KV_CPU_ISA_AVX2}).empty()) GTEST_SKIP() << "a CUDA device is present";
  kv_model_config c = tiny_config(KV_DTYPE_BF16);
  kv_model_t m = nullptr;
  EXPECT_EQ(kv_model_init(KV_BACKEND_CUDA, 0, &c, &m), KV_STATUS_NO_DEVICE);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(last_error().find("CUDA"), std::string::npos) << last_error();
}

}  // namespace
}  // namespace kvt
