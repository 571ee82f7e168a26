// kv_paged_prefill_async on every target (CPU scalar, CPU AVX2, CUDA; CUDA cases are named
// *cuda* and skip without a device):
//  - MatchesReference: varlen batches (whole prompts, chunks after cached tokens, zero-length
//    chunks) over pages in a random physical order, against the double-precision reference
//    (reference.h prefill_reference, run per sequence on the K/V gathered on the host), with
//    the reference's derived error bound; o and lse are poisoned with NaN before the call and
//    must all be written; canaries around them must hold. Unused page rows and table entries
//    hold NaN and bad page ids, so reading one fails the test.
//  - EqualsDenseOp: the paged op and kv_attention_prefill_async on the same K/V laid out
//    contiguously give identical bits (both backends run the same arithmetic in the same order).
//  - RejectsBadArgumentsByName / BadDeviceIndicesFail: each invalid argument gives its status
//    and a message naming it; a bad q_indptr, kv_len or page id fails the call on the CPU and
//    the next kv_stream_synchronize on CUDA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>

#include "reference.h"
#include "test_util.h"

namespace kvt {
namespace {

struct PagedSpec {
  kv_dtype dtype;
  int32_t d, hq, hkv, page_tokens;
  std::vector<std::pair<int32_t, int32_t>> seqs;  // (q_len, kv_len) per sequence
  float scale_mult = 1.f;                          // sm_scale = scale_mult / sqrt(d)
  bool per_head_tables = false;                    // single-head pool, one table per KV head
  int32_t token_pad = 0;                           // extra elements per token row (multiple of 8)

  std::string name() const {
    std::ostringstream s;
    s << dtype_name(dtype) << "_d" << d << "_hq" << hq << "_hkv" << hkv << "_P" << page_tokens;
    for (auto [q, kv] : seqs) s << "_q" << q << "kv" << kv;
    if (scale_mult != 1.f) s << "_scale" << scale_mult;
    if (per_head_tables) s << "_perhead";
    if (token_pad) s << "_pad" << token_pad;
    return s.str();
  }
  float scale() const { return scale_mult / std::sqrt(static_cast<float>(d)); }
};

std::unique_ptr<GuardedBuffer> upload_bytes(kv_stream_t stream, kv_backend backend, const void* data, size_t bytes) {
  auto b = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, std::max<size_t>(bytes, 16));
  if (bytes) b->upload(data, bytes);
  return b;
}

// One paged prefill problem on a backend: logical K/V per sequence, scattered into a page
// pool in a random physical page order, queries in a varlen batch.
class PagedProblem {
 public:
  PagedProblem(const PagedSpec& spec, kv_stream_t stream, kv_backend backend, uint64_t seed)
      : spec_(spec), stream_(stream) {
    std::mt19937_64 rng(seed);
    const int32_t P = spec.page_tokens, d = spec.d, hkv = spec.hkv;
    batch_ = static_cast<int32_t>(spec.seqs.size());
    const int32_t tables = spec.per_head_tables ? hkv : 1;
    indptr_.assign(1, 0);
    int32_t max_pages = 1;
    for (auto [q, kv] : spec.seqs) {
      indptr_.push_back(indptr_.back() + q);
      kv_lens_.push_back(kv);
      max_q_len_ = std::max(max_q_len_, q);
      max_kv_len_ = std::max(max_kv_len_, kv);
      max_pages = std::max(max_pages, (kv + P - 1) / P);
    }
    rows_ = indptr_.back();
    // Pool layout.
    kv_.page_tokens = P;
    kv_.num_kv_heads = hkv;
    kv_.head_dim = d;
    kv_.token_stride = d + spec.token_pad;
    kv_.head_stride = spec.per_head_tables ? 0 : P * kv_.token_stride;
    kv_.page_stride = spec.per_head_tables ? P * kv_.token_stride : hkv * kv_.head_stride;
    int64_t used = 0;
    for (int32_t kv : kv_lens_) used += static_cast<int64_t>((kv + P - 1) / P) * tables;
    kv_.num_pages = used + 3;  // spare pages, never referenced
    std::vector<int32_t> perm(static_cast<size_t>(kv_.num_pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    // Table entries past a sequence's pages are never read: a bad id there would be caught.
    table_.seq_stride = static_cast<int64_t>(tables) * max_pages;
    table_.head_stride = spec.per_head_tables ? max_pages : 0;
    pages_.assign(static_cast<size_t>(batch_) * table_.seq_stride, -7);
    const size_t pool_elems = static_cast<size_t>(kv_.num_pages * kv_.page_stride);
    std::vector<float> kpool(pool_elems, std::nanf("")), vpool(pool_elems, std::nanf(""));
    size_t next = 0;
    for (int32_t b = 0; b < batch_; ++b) {
      const int32_t kv_len = kv_lens_[b];
      k_.push_back(random_typed(spec.dtype, static_cast<size_t>(kv_len) * hkv * d, rng, -1.f, 1.f));
      v_.push_back(random_typed(spec.dtype, static_cast<size_t>(kv_len) * hkv * d, rng, -1.f, 1.f));
      for (int32_t t = 0; t < tables; ++t)
        for (int32_t j = 0; j * P < kv_len; ++j) {
          const int32_t phys = perm[next++];
          pages_[b * table_.seq_stride + t * table_.head_stride + j] = phys;
          for (int32_t r = 0; r < P && j * P + r < kv_len; ++r)
            for (int32_t h = 0; h < hkv; ++h) {
              if (spec.per_head_tables && h != t) continue;
              const int64_t dst = phys * kv_.page_stride + h * kv_.head_stride + r * kv_.token_stride;
              const size_t src = (static_cast<size_t>(j * P + r) * hkv + h) * d;
              std::copy_n(&k_[b].values[src], d, &kpool[dst]);
              std::copy_n(&v_[b].values[src], d, &vpool[dst]);
            }
        }
    }
    q_ = random_typed(spec.dtype, static_cast<size_t>(rows_) * spec.hq * d, rng, -1.f, 1.f);
    auto up = [&](const std::vector<float>& vals) {
      const auto raw = TypedData{spec.dtype, vals}.raw();
      return upload_bytes(stream, backend, raw.data(), raw.size());
    };
    kb_ = up(kpool);
    vb_ = up(vpool);
    qb_ = up(q_.values);
    indptr_b_ = upload_bytes(stream, backend, indptr_.data(), indptr_.size() * 4);
    lens_b_ = upload_bytes(stream, backend, kv_lens_.data(), kv_lens_.size() * 4);
    pages_b_ = upload_bytes(stream, backend, pages_.data(), pages_.size() * 4);
    ob_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE,
                                          std::max<size_t>(q_.values.size(), 1) * dtype_bytes(spec.dtype));
    lb_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE,
                                          std::max<size_t>(static_cast<size_t>(rows_) * spec.hq, 1) * 4);
    ob_->fill(0xFF);  // NaN: an element left unwritten is caught
    lb_->fill(0xFF);
    kv_.k_pages = kb_->data();
    kv_.v_pages = vb_->data();
    table_.pages = static_cast<const int32_t*>(pages_b_->data());
    table_.kv_lens = static_cast<const int32_t*>(lens_b_->data());
  }

  kv_status run() {
    return kv_paged_prefill_async(stream_, spec_.dtype, qb_->data(), static_cast<const int32_t*>(indptr_b_->data()),
                                  &kv_, &table_, ob_->data(), static_cast<float*>(lb_->data()), batch_, spec_.hq,
                                  max_q_len_, max_kv_len_, spec_.scale());
  }

  std::vector<float> output() const {
    std::vector<unsigned char> raw(q_.values.size() * dtype_bytes(spec_.dtype));
    ob_->download(raw.data(), raw.size());
    return TypedData::from_raw(spec_.dtype, raw).values;
  }
  std::vector<float> lse() const {
    std::vector<float> l(static_cast<size_t>(rows_) * spec_.hq);
    lb_->download(l.data(), l.size() * 4);
    return l;
  }

  // Failures against the double reference (empty: pass); worst error / bound in *worst.
  std::vector<std::string> verify(double* worst) const {
    std::vector<std::string> failures;
    if (!ob_->guards_intact()) failures.push_back("o: write outside the buffer (canary changed)");
    if (!lb_->guards_intact()) failures.push_back("lse: write outside the buffer (canary changed)");
    const std::vector<float> o = output(), l = lse();
    for (size_t i = 0; i < o.size(); ++i)
      if (std::isnan(o[i])) {
        failures.push_back("o[" + std::to_string(i) + "] was not written (still NaN)");
        break;
      }
    for (size_t i = 0; i < l.size(); ++i)
      if (std::isnan(l[i])) {
        failures.push_back("lse[" + std::to_string(i) + "] was not written (still NaN)");
        break;
      }
    const int32_t hq = spec_.hq, d = spec_.d;
    *worst = 0.0;
    for (int32_t b = 0; b < batch_; ++b) {
      const int32_t q_len = indptr_[b + 1] - indptr_[b];
      if (q_len == 0) continue;
      const size_t row_elems = static_cast<size_t>(hq) * d;
      const std::vector<float> qb(q_.values.begin() + indptr_[b] * row_elems,
                                  q_.values.begin() + indptr_[b + 1] * row_elems);
      std::vector<int64_t> tokens(q_len);
      std::iota(tokens.begin(), tokens.end(), 0);
      const StateRef ref = prefill_reference(qb, k_[b].values, v_[b].values, 1, q_len, kv_lens_[b], hq, spec_.hkv, d,
                                             spec_.scale(), spec_.dtype, tokens);
      const std::vector<float> ob(o.begin() + indptr_[b] * row_elems, o.begin() + indptr_[b + 1] * row_elems);
      const std::vector<float> lb(l.begin() + static_cast<size_t>(indptr_[b]) * hq,
                                  l.begin() + static_cast<size_t>(indptr_[b + 1]) * hq);
      const CompareResult co = compare(ob, ref.o, ref.o_bound, "o");
      const CompareResult cl = compare(lb, ref.lse, ref.lse_bound, "lse");
      auto where = [&](const CompareResult& c, int64_t per_row) {
        std::ostringstream s;
        const int64_t row = c.first_bad / per_row;
        s << " (sequence " << b << ", query " << row / hq << " of " << q_len << ", kv_len " << kv_lens_[b] << ", head "
          << row % hq << ")";
        return s.str();
      };
      if (!co.ok) failures.push_back(co.message + where(co, d));
      if (!cl.ok) failures.push_back(cl.message + where(cl, 1));
      *worst = std::max({*worst, co.worst_ratio, cl.worst_ratio});
    }
    return failures;
  }

  // The same K/V contiguous, [batch][kv_len][hkv][d] (needs equal lengths), as raw bytes.
  std::vector<unsigned char> dense_kv(bool values) const {
    std::vector<float> all;
    for (int32_t b = 0; b < batch_; ++b) {
      const auto& src = values ? v_[b].values : k_[b].values;
      all.insert(all.end(), src.begin(), src.end());
    }
    return TypedData{spec_.dtype, all}.raw();
  }

  const PagedSpec& spec() const { return spec_; }
  GuardedBuffer& q_buffer() { return *qb_; }
  kv_paged_kv& kv() { return kv_; }
  kv_page_table& table() { return table_; }
  const int32_t* indptr_device() const { return static_cast<const int32_t*>(indptr_b_->data()); }
  GuardedBuffer& o_buffer() { return *ob_; }
  GuardedBuffer& lse_buffer() { return *lb_; }
  GuardedBuffer& indptr_buffer() { return *indptr_b_; }
  GuardedBuffer& lens_buffer() { return *lens_b_; }
  GuardedBuffer& pages_buffer() { return *pages_b_; }
  const std::vector<int32_t>& host_indptr() const { return indptr_; }
  const std::vector<int32_t>& host_kv_lens() const { return kv_lens_; }
  const std::vector<int32_t>& host_pages() const { return pages_; }
  int32_t batch() const { return batch_; }
  int32_t max_q_len() const { return max_q_len_; }
  int32_t max_kv_len() const { return max_kv_len_; }

 private:
  PagedSpec spec_;
  kv_stream_t stream_;
  int32_t batch_ = 0, rows_ = 0, max_q_len_ = 0, max_kv_len_ = 0;
  std::vector<int32_t> indptr_, kv_lens_, pages_;
  std::vector<TypedData> k_, v_;
  TypedData q_;
  kv_paged_kv kv_{};
  kv_page_table table_{};
  std::unique_ptr<GuardedBuffer> kb_, vb_, qb_, indptr_b_, lens_b_, pages_b_, ob_, lb_;
};

// ----------------------------------------------------------------------------- against the reference

std::vector<PagedSpec> reference_specs() {
  const kv_dtype B = KV_DTYPE_BF16, F = KV_DTYPE_F32;
  std::vector<PagedSpec> s;
  // Tensor-core path (bf16, d 64/128): several 128-row query tiles, chunks after cached tokens,
  // a zero-length chunk, GQA 4 and 8, page sizes 1, 16, 24, 64, 256.
  s.push_back({B, 128, 8, 2, 16, {{200, 200}, {37, 300}, {0, 50}, {130, 194}}});
  s.push_back({B, 64, 8, 1, 24, {{150, 400}, {1, 77}, {0, 0}}});
  s.push_back({B, 128, 4, 1, 64, {{129, 129}, {64, 1000}}});
  s.push_back({B, 64, 4, 4, 1, {{130, 140}, {3, 3}}});
  s.push_back({B, 128, 4, 4, 256, {{70, 300}}, 2.f});
  s.push_back({B, 128, 4, 2, 16, {{100, 180}, {33, 33}}, 1.f, true, 8});  // per-head tables, padded rows
  // Simple fp32 path: f32, and head_dim 256 in both dtypes.
  s.push_back({F, 64, 4, 4, 1, {{20, 33}, {5, 5}, {0, 0}}});
  s.push_back({F, 128, 8, 2, 24, {{40, 100}, {0, 7}, {65, 65}}});
  s.push_back({F, 128, 8, 1, 16, {{30, 30}, {9, 40}}, 1.f, true});
  s.push_back({F, 256, 2, 1, 16, {{40, 90}, {17, 17}}});
  s.push_back({B, 256, 2, 2, 64, {{30, 60}}});
  s.push_back({F, 64, 8, 8, 256, {{70, 300}}, 0.5f, false, 16});
  return s;
}

struct PagedParam {
  size_t index;
  Target target;
};

std::vector<PagedParam> params_for(size_t count) {
  std::vector<PagedParam> out;
  for (size_t i = 0; i < count; ++i)
    for (const Target& t : all_targets()) out.push_back({i, t});
  return out;
}

std::string sanitize(std::string name) {
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

class PagedPrefillTest : public ::testing::TestWithParam<PagedParam> {};

TEST_P(PagedPrefillTest, MatchesReference) {
  const PagedParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const PagedSpec spec = reference_specs()[p.index];
  const uint64_t seed = seed_for("paged_prefill/" + spec.name() + "/" + p.target.name());
  RecordProperty("seed", std::to_string(seed));
  StreamHolder stream(p.target);
  PagedProblem prob(spec, stream.get(), p.target.backend, seed);
  ASSERT_EQ(prob.run(), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(stream.get()), KV_STATUS_OK) << kv_last_error();
  double worst = 0.0;
  for (const auto& f : prob.verify(&worst))
    ADD_FAILURE() << spec.name() << " on " << p.target.name() << " (seed " << seed << "): " << f;
  RecordProperty("worst_error_over_bound", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(Cases, PagedPrefillTest, ::testing::ValuesIn(params_for(reference_specs().size())),
                         [](const ::testing::TestParamInfo<PagedParam>& pi) {
                           return sanitize(reference_specs()[pi.param.index].name() + "_" +
                                           pi.param.target.name());
                         });

// ----------------------------------------------------------------------------- equals the dense op

std::vector<PagedSpec> dense_specs() {
  const kv_dtype B = KV_DTYPE_BF16, F = KV_DTYPE_F32;
  return {
      {B, 128, 8, 2, 16, {{150, 300}, {150, 300}}},
      {B, 64, 4, 4, 1, {{70, 130}}},
      {B, 128, 8, 1, 24, {{257, 257}}},
      {F, 64, 4, 1, 24, {{33, 33}, {33, 33}, {33, 33}}},
      {F, 256, 2, 2, 16, {{20, 45}}},
  };
}

class PagedPrefillDenseTest : public ::testing::TestWithParam<PagedParam> {};

TEST_P(PagedPrefillDenseTest, EqualsDenseOp) {
  const PagedParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const PagedSpec spec = dense_specs()[p.index];
  const uint64_t seed = seed_for("paged_prefill_dense/" + spec.name() + "/" + p.target.name());
  RecordProperty("seed", std::to_string(seed));
  StreamHolder stream(p.target);
  PagedProblem prob(spec, stream.get(), p.target.backend, seed);
  ASSERT_EQ(prob.run(), KV_STATUS_OK) << kv_last_error();
  const auto kraw = prob.dense_kv(false), vraw = prob.dense_kv(true);
  auto kb = upload_bytes(stream.get(), p.target.backend, kraw.data(), kraw.size());
  auto vb = upload_bytes(stream.get(), p.target.backend, vraw.data(), vraw.size());
  const size_t o_bytes = prob.o_buffer().bytes(), l_bytes = prob.lse_buffer().bytes();
  GuardedBuffer ob(stream.get(), p.target.backend, KV_MEM_DEVICE, o_bytes);
  GuardedBuffer lb(stream.get(), p.target.backend, KV_MEM_DEVICE, l_bytes);
  ob.fill(0xFF);
  lb.fill(0xFF);
  const auto [q_len, kv_len] = spec.seqs[0];
  ASSERT_EQ(kv_attention_prefill_async(stream.get(), spec.dtype, prob.q_buffer().data(), kb->data(), vb->data(),
                                       ob.data(), static_cast<float*>(lb.data()), prob.batch(), q_len, kv_len, spec.hq,
                                       spec.hkv, spec.d, spec.scale()),
            KV_STATUS_OK)
      << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(stream.get()), KV_STATUS_OK) << kv_last_error();
  std::vector<unsigned char> paged_o(o_bytes), dense_o(o_bytes), paged_l(l_bytes), dense_l(l_bytes);
  prob.o_buffer().download(paged_o.data(), o_bytes);
  ob.download(dense_o.data(), o_bytes);
  prob.lse_buffer().download(paged_l.data(), l_bytes);
  lb.download(dense_l.data(), l_bytes);
  const size_t elem = dtype_bytes(spec.dtype);
  for (size_t i = 0; i < o_bytes; i += elem)
    if (std::memcmp(&paged_o[i], &dense_o[i], elem) != 0) {
      ADD_FAILURE() << spec.name() << " on " << p.target.name() << " (seed " << seed << "): o element " << i / elem
                    << " differs from kv_attention_prefill_async";
      break;
    }
  for (size_t i = 0; i < l_bytes; i += 4)
    if (std::memcmp(&paged_l[i], &dense_l[i], 4) != 0) {
      ADD_FAILURE() << spec.name() << " on " << p.target.name() << " (seed " << seed << "): lse element " << i / 4
                    << " differs from kv_attention_prefill_async";
      break;
    }
  // And the paged result is right, not only equal.
  double worst = 0.0;
  for (const auto& f : prob.verify(&worst)) ADD_FAILURE() << spec.name() << ": " << f;
}

INSTANTIATE_TEST_SUITE_P(Cases, PagedPrefillDenseTest, ::testing::ValuesIn(params_for(dense_specs().size())),
                         [](const ::testing::TestParamInfo<PagedParam>& pi) {
                           return sanitize(dense_specs()[pi.param.index].name() + "_" + pi.param.target.name());
                         });

// ----------------------------------------------------------------------------- bad input

class PagedPrefillErrorTest : public ::testing::TestWithParam<Target> {};

// Expects status and a message containing `text`.
void expect_error(kv_status got, kv_status want, const std::string& text) {
  EXPECT_EQ(got, want) << kv_status_to_string(got) << ": " << kv_last_error();
  const std::string msg = kv_last_error();
  EXPECT_NE(msg.find(text), std::string::npos) << "message \"" << msg << "\" lacks \"" << text << "\"";
  EXPECT_NE(msg.find("kv_paged_prefill_async"), std::string::npos) << msg;
}

TEST_P(PagedPrefillErrorTest, RejectsBadArgumentsByName) {
  const Target& t = GetParam();
  const std::string why = unavailable_reason(t);
  if (!why.empty()) GTEST_SKIP() << why;
  StreamHolder stream(t);
  const PagedSpec spec{KV_DTYPE_BF16, 64, 4, 2, 16, {{10, 20}, {5, 5}}};
  PagedProblem prob(spec, stream.get(), t.backend, seed_for("paged_prefill_errors/" + t.name()));
  kv_stream_t s = stream.get();
  void* q = prob.q_buffer().data();
  void* o = prob.o_buffer().data();
  float* l = static_cast<float*>(prob.lse_buffer().data());
  const int32_t* ip = prob.indptr_device();
  const kv_paged_kv good_kv = prob.kv();
  const kv_page_table good_table = prob.table();
  const float sc = spec.scale();
  auto call = [&](const kv_paged_kv* kv, const kv_page_table* table, kv_dtype dtype = KV_DTYPE_BF16) {
    return kv_paged_prefill_async(s, dtype, q, ip, kv, table, o, l, 2, 4, 10, 20, sc);
  };
  auto with_kv = [&](auto edit) {
    kv_paged_kv k = good_kv;
    edit(k);
    return call(&k, &good_table);
  };
  auto with_table = [&](auto edit) {
    kv_page_table tb = good_table;
    edit(tb);
    return call(&good_kv, &tb);
  };
  ASSERT_EQ(call(&good_kv, &good_table), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(s), KV_STATUS_OK) << kv_last_error();
  const kv_status I = KV_STATUS_INVALID_ARGUMENT;
  expect_error(kv_paged_prefill_async(nullptr, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, 2, 4, 10, 20, sc), I,
               "stream");
  expect_error(call(&good_kv, &good_table, static_cast<kv_dtype>(2)), I, "dtype=2");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, -1, 4, 10, 20, sc), I,
               "batch=-1");
  expect_error(call(nullptr, &good_table), I, "kv is NULL");
  expect_error(with_kv([](kv_paged_kv& k) { k.page_tokens = 0; }), I, "kv.page_tokens=0");
  expect_error(with_kv([](kv_paged_kv& k) { k.page_tokens = 257; }), I, "kv.page_tokens=257");
  expect_error(with_kv([](kv_paged_kv& k) { k.num_kv_heads = 0; }), I, "kv.num_kv_heads=0");
  expect_error(with_kv([](kv_paged_kv& k) { k.head_dim = 96; }), KV_STATUS_UNSUPPORTED, "kv.head_dim=96");
  expect_error(with_kv([](kv_paged_kv& k) { k.reserved = 1; }), I, "kv.reserved=1");
  expect_error(with_kv([](kv_paged_kv& k) { k.num_pages = 0; }), I, "kv.num_pages=0");
  expect_error(with_kv([](kv_paged_kv& k) { k.token_stride = 32; }), I, "kv.token_stride=32");
  expect_error(with_kv([](kv_paged_kv& k) { k.page_stride = 2052; }), I, "multiples of 8");
  expect_error(with_kv([](kv_paged_kv& k) { k.page_stride = 64; }), I, "kv.page_stride=64");
  expect_error(with_kv([](kv_paged_kv& k) { k.k_pages = nullptr; }), I, "kv.k_pages is NULL");
  expect_error(with_kv([](kv_paged_kv& k) { k.v_pages = nullptr; }), I, "kv.v_pages is NULL");
  expect_error(call(&good_kv, nullptr), I, "table is NULL");
  expect_error(with_table([](kv_page_table& tb) { tb.pages = nullptr; }), I, "table.pages is NULL");
  expect_error(with_table([](kv_page_table& tb) { tb.kv_lens = nullptr; }), I, "table.kv_lens is NULL");
  expect_error(with_table([](kv_page_table& tb) { tb.seq_stride = -1; }), I, "table.seq_stride=-1");
  expect_error(with_table([](kv_page_table& tb) { tb.head_stride = 4; }), I, "table.head_stride=4");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, 2, 5, 10, 20, sc), I,
               "num_q_heads=5");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, 2, 4, -1, 20, sc), I,
               "max_q_len=-1");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, 2, 4, 10, -1, sc), I,
               "max_kv_len=-1");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, 2, 4, 10, 20, 0.f), I,
               "sm_scale=0");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, 2, 4, 10, 20, NAN), I,
               "sm_scale=nan");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, nullptr, ip, &good_kv, &good_table, o, l, 2, 4, 10, 20, sc),
               I, "q is NULL");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, nullptr, &good_kv, &good_table, o, l, 2, 4, 10, 20, sc),
               I, "q_indptr is NULL");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, nullptr, l, 2, 4, 10, 20, sc),
               I, "o is NULL");
  expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, q, ip, &good_kv, &good_table, o, l, 1 << 16, 4, 1 << 16, 20,
                                      sc),
               I, "max_q_len");
  if (t.backend == KV_BACKEND_CUDA) {
    expect_error(kv_paged_prefill_async(s, KV_DTYPE_BF16, static_cast<char*>(q) + 2, ip, &good_kv, &good_table, o, l,
                                        2, 4, 10, 20, sc),
                 I, "16-byte aligned");
    expect_error(with_kv([](kv_paged_kv& k) { k.k_pages = static_cast<char*>(k.k_pages) + 2; }), I, "16-byte aligned");
  }
  // batch = 0 and max_q_len = 0 are no-ops once the layout is valid; no tensor is looked at.
  EXPECT_EQ(kv_paged_prefill_async(s, KV_DTYPE_BF16, nullptr, nullptr, &good_kv, &good_table, nullptr, nullptr, 0, 4,
                                   10, 20, sc),
            KV_STATUS_OK)
      << kv_last_error();
  EXPECT_EQ(kv_paged_prefill_async(s, KV_DTYPE_BF16, nullptr, nullptr, &good_kv, &good_table, nullptr, nullptr, 2, 4,
                                   0, 20, sc),
            KV_STATUS_OK)
      << kv_last_error();
  EXPECT_EQ(kv_stream_synchronize(s), KV_STATUS_OK) << kv_last_error();
}

// Bad values in stream memory: the CPU fails the call, CUDA the next synchronize (once).
TEST_P(PagedPrefillErrorTest, BadDeviceIndicesFail) {
  const Target& t = GetParam();
  const std::string why = unavailable_reason(t);
  if (!why.empty()) GTEST_SKIP() << why;
  StreamHolder stream(t);
  const bool cpu = t.backend == KV_BACKEND_CPU;
  for (kv_dtype dtype : {KV_DTYPE_BF16, KV_DTYPE_F32}) {  // tensor-core and simple CUDA kernels
    SCOPED_TRACE(dtype_name(dtype));
    const PagedSpec spec{dtype, 128, 4, 2, 16, {{10, 40}, {5, 5}}};
    PagedProblem prob(spec, stream.get(), t.backend, seed_for("paged_prefill_bad_indices/" + t.name()));
    auto expect_reported = [&](const std::string& cpu_text, const std::string& cuda_text) {
      const kv_status launch = prob.run();
      const kv_status sync = kv_stream_synchronize(stream.get());
      const std::string msg = kv_last_error();
      EXPECT_EQ(cpu ? launch : sync, KV_STATUS_INVALID_ARGUMENT) << msg;
      EXPECT_EQ(cpu ? sync : launch, KV_STATUS_OK) << msg;
      EXPECT_NE(msg.find(cpu ? cpu_text : cuda_text), std::string::npos) << "message \"" << msg << "\"";
      EXPECT_EQ(kv_stream_synchronize(stream.get()), KV_STATUS_OK) << "the error must be reported once";
    };
    auto restore = [&] {
      prob.pages_buffer().upload(prob.host_pages());
      prob.lens_buffer().upload(prob.host_kv_lens());
      prob.indptr_buffer().upload(prob.host_indptr());
    };
    // A page id past num_pages in sequence 0's second logical page.
    std::vector<int32_t> pages = prob.host_pages();
    pages[1] = static_cast<int32_t>(prob.kv().num_pages) + 90;
    const std::string bad_page = std::to_string(pages[1]);
    prob.pages_buffer().upload(pages);
    expect_reported("table.pages[1]=" + bad_page, "page table entry outside [0, num_pages) (entry 1, value " + bad_page);
    pages[1] = -1;
    prob.pages_buffer().upload(pages);
    expect_reported("table.pages[1]=-1", "value -1");
    restore();
    // kv_len above max_kv_len, and below its q_len.
    std::vector<int32_t> lens = prob.host_kv_lens();
    lens[1] = prob.max_kv_len() + 1;
    prob.lens_buffer().upload(lens);
    expect_reported("table.kv_lens[1]=41", "kv_lens entry outside [0, max_kv_len]");
    lens[1] = 4;
    prob.lens_buffer().upload(lens);
    expect_reported("table.kv_lens[1]=4", "kv_lens entry outside [0, max_kv_len]");
    restore();
    // q_indptr decreasing, not starting at 0, and a q_len above max_q_len.
    prob.indptr_buffer().upload(std::vector<int32_t>{0, 10, 9});
    expect_reported("non-decreasing", "q_indptr not non-decreasing");
    prob.indptr_buffer().upload(std::vector<int32_t>{1, 10, 15});
    expect_reported("q_indptr[0]=1", "q_indptr not non-decreasing");
    prob.indptr_buffer().upload(std::vector<int32_t>{0, 11, 15});
    expect_reported("q_len=11", "q_len > max_q_len");
    restore();
    ASSERT_EQ(prob.run(), KV_STATUS_OK) << kv_last_error();
    ASSERT_EQ(kv_stream_synchronize(stream.get()), KV_STATUS_OK) << kv_last_error();
    double worst = 0.0;
    for (const auto& f : prob.verify(&worst)) ADD_FAILURE() << "after the errors: " << f;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, PagedPrefillErrorTest, ::testing::ValuesIn(all_targets()),
                         [](const ::testing::TestParamInfo<Target>& pi) { return pi.param.name(); });

}  // namespace
}  // namespace kvt
