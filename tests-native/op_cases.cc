#include "op_cases.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

#include "reference.h"
#include "test_util.h"

namespace kvt {

const char* roofline_name(Roofline r) {
  switch (r) {
    case Roofline::kRead: return "read";
    case Roofline::kCopy: return "copy";
    case Roofline::kHostToDevice: return "h2d";
    case Roofline::kDeviceToHost: return "d2h";
    case Roofline::kCompute: return "bf16 compute";
  }
  return "?";
}

namespace {

constexpr float kInfF = std::numeric_limits<float>::infinity();

// Checks a buffer's canaries and that no element read back is NaN (outputs are poisoned with
// NaN before the run, so a NaN left means an element was never written).
void check_written(const GuardedBuffer& buf, const std::vector<float>& values, const char* what,
                   std::vector<std::string>& failures) {
  if (!buf.guards_intact()) failures.push_back(std::string(what) + ": write outside the buffer (canary changed)");
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) {
      failures.push_back(std::string(what) + "[" + std::to_string(i) + "] was not written (still NaN)");
      return;
    }
  }
}

std::vector<float> read_floats(const GuardedBuffer& buf, kv_dtype dtype, size_t count) {
  std::vector<unsigned char> raw(count * dtype_bytes(dtype));
  buf.download(raw.data(), raw.size());
  return TypedData::from_raw(dtype, raw).values;
}

// ----------------------------------------------------------------------------- merge

enum class MergeKind { kPair, kInPlace, kNWay };

class MergeCase : public OpCase {
 public:
  MergeCase(MergeKind kind, kv_dtype dtype, int32_t n, int64_t rows, int32_t d, double empty_fraction, float lse_range,
            double goal = 0.0)
      : kind_(kind), dtype_(dtype), n_(kind == MergeKind::kNWay ? n : 2), rows_(rows), d_(d),
        empty_fraction_(empty_fraction), lse_range_(lse_range), goal_(goal) {}

  std::string op() const override {
    switch (kind_) {
      case MergeKind::kPair: return "merge_state";
      case MergeKind::kInPlace: return "merge_state_inplace";
      case MergeKind::kNWay: return "merge_states";
    }
    return "?";
  }
  std::string params() const override {
    std::ostringstream s;
    s << "dtype=" << dtype_name(dtype_) << ",n=" << n_ << ",rows=" << rows_ << ",d=" << d_
      << ",empty=" << empty_fraction_;
    return s.str();
  }

  void prepare(kv_stream_t stream, kv_backend backend, uint64_t seed) override {
    std::mt19937_64 rng(seed);
    const size_t per_state = static_cast<size_t>(rows_) * d_;
    o_in_ = random_typed(dtype_, per_state * n_, rng, -2.f, 2.f);
    lse_in_.resize(static_cast<size_t>(n_) * rows_);
    std::uniform_real_distribution<float> lse_dist(-lse_range_, lse_range_);
    std::bernoulli_distribution empty(empty_fraction_);
    for (int32_t i = 0; i < n_; ++i)
      for (int64_t r = 0; r < rows_; ++r) {
        float& l = lse_in_[i * rows_ + r];
        l = empty(rng) ? -kInfF : lse_dist(rng);
        // An empty state's o may hold anything: NaN proves the kernel never reads it.
        if (l == -kInfF)
          for (int32_t j = 0; j < d_; ++j) o_in_.values[(i * rows_ + r) * d_ + j] = std::nanf("");
      }
    const uint64_t o_bytes = per_state * dtype_bytes(dtype_), lse_bytes = rows_ * sizeof(float);
    states_.clear();
    std::vector<unsigned char> raw = o_in_.raw();
    if (kind_ == MergeKind::kNWay) {
      states_.push_back(std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, o_bytes * n_));
      states_.back()->upload(raw.data(), raw.size());
      lses_.clear();
      lses_.push_back(std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, lse_bytes * n_));
      lses_.back()->upload(lse_in_);
    } else {
      lses_.clear();
      for (int32_t i = 0; i < 2; ++i) {
        states_.push_back(std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, o_bytes));
        states_.back()->upload(raw.data() + i * o_bytes, o_bytes);
        lses_.push_back(std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, lse_bytes));
        lses_.back()->upload(lse_in_.data() + i * rows_, lse_bytes);
      }
    }
    if (kind_ != MergeKind::kInPlace) {
      o_out_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, o_bytes);
      lse_out_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, lse_bytes);
      o_out_->fill(0xFF);
      lse_out_->fill(0xFF);
    }
  }

  void run(kv_stream_t stream) override {
    const kv_dtype t = dtype_;
    switch (kind_) {
      case MergeKind::kPair:
        KVT_CHECK(kv_merge_state_async(stream, t, states_[0]->data(), static_cast<float*>(lses_[0]->data()),
                                       states_[1]->data(), static_cast<float*>(lses_[1]->data()), o_out_->data(),
                                       static_cast<float*>(lse_out_->data()), rows_, d_));
        break;
      case MergeKind::kInPlace:
        KVT_CHECK(kv_merge_state_inplace_async(stream, t, states_[0]->data(), static_cast<float*>(lses_[0]->data()),
                                               states_[1]->data(), static_cast<float*>(lses_[1]->data()), rows_, d_));
        break;
      case MergeKind::kNWay:
        KVT_CHECK(kv_merge_states_async(stream, t, states_[0]->data(), static_cast<float*>(lses_[0]->data()), n_,
                                        o_out_->data(), static_cast<float*>(lse_out_->data()), rows_, d_));
        break;
    }
  }

  std::vector<std::string> verify() override {
    std::vector<std::string> failures;
    const GuardedBuffer& o_buf = kind_ == MergeKind::kInPlace ? *states_[0] : *o_out_;
    const GuardedBuffer& l_buf = kind_ == MergeKind::kInPlace ? *lses_[0] : *lse_out_;
    std::vector<float> o = read_floats(o_buf, dtype_, static_cast<size_t>(rows_) * d_);
    std::vector<float> lse = l_buf.download_all<float>();
    check_written(o_buf, o, "o_out", failures);
    if (!l_buf.guards_intact()) failures.push_back("lse_out: canary changed");
    StateRef ref = merge_reference(o_in_.values, lse_in_, n_, rows_, d_, dtype_);
    CompareResult co = compare(o, ref.o, ref.o_bound, "o_out");
    CompareResult cl = compare(lse, ref.lse, ref.lse_bound, "lse_out");
    if (!co.ok) failures.push_back(co.message);
    if (!cl.ok) failures.push_back(cl.message);
    worst_ = std::max(co.worst_ratio, cl.worst_ratio);
    return failures;
  }
  double worst_error_ratio() const override { return worst_; }

  double bytes_moved() const override {
    const double sz = static_cast<double>(dtype_bytes(dtype_));
    return n_ * rows_ * (d_ * sz + 4) + rows_ * (d_ * sz + 4);
  }
  Roofline roofline() const override { return Roofline::kCopy; }
  double goal() const override { return goal_; }

 private:
  MergeKind kind_;
  kv_dtype dtype_;
  int32_t n_;
  int64_t rows_;
  int32_t d_;
  double empty_fraction_;
  float lse_range_;
  double goal_;
  double worst_ = 0.0;
  TypedData o_in_{KV_DTYPE_F32, {}};
  std::vector<float> lse_in_;
  std::vector<std::unique_ptr<GuardedBuffer>> states_, lses_;
  std::unique_ptr<GuardedBuffer> o_out_, lse_out_;
};

// ----------------------------------------------------------------------------- attention

enum class Workspace { kNone, kFull, kSmall };

class AttentionDecodeCase : public OpCase {
 public:
  AttentionDecodeCase(kv_dtype dtype, int32_t batch, int32_t hq, int32_t hkv, int32_t d, int64_t len, float scale_mult,
                      Workspace ws)
      : dtype_(dtype), batch_(batch), hq_(hq), hkv_(hkv), d_(d), len_(len), scale_mult_(scale_mult), ws_(ws) {}

  std::string op() const override { return "attention_decode"; }
  std::string params() const override {
    std::ostringstream s;
    s << "dtype=" << dtype_name(dtype_) << ",b=" << batch_ << ",hq=" << hq_ << ",hkv=" << hkv_ << ",d=" << d_
      << ",len=" << len_ << ",scale=" << scale_mult_ << "/sqrt(d),ws="
      << (ws_ == Workspace::kNone ? "none" : ws_ == Workspace::kFull ? "full" : "small");
    return s.str();
  }

  void prepare(kv_stream_t stream, kv_backend backend, uint64_t seed) override {
    std::mt19937_64 rng(seed);
    const size_t q_n = static_cast<size_t>(batch_) * hq_ * d_;
    const size_t kv_n = static_cast<size_t>(batch_) * len_ * hkv_ * d_;
    q_ = random_typed(dtype_, q_n, rng, -1.f, 1.f);
    k_ = random_typed(dtype_, kv_n, rng, -1.f, 1.f);
    v_ = random_typed(dtype_, kv_n, rng, -1.f, 1.f);
    auto upload = [&](const TypedData& t, size_t n) {
      auto b = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, std::max<size_t>(n, 1) * dtype_bytes(dtype_));
      if (n) {
        auto raw = t.raw();
        b->upload(raw.data(), raw.size());
      }
      return b;
    };
    qb_ = upload(q_, q_n);
    kb_ = upload(k_, kv_n);
    vb_ = upload(v_, kv_n);
    ob_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, q_n * dtype_bytes(dtype_));
    lb_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, static_cast<size_t>(batch_) * hq_ * 4);
    ob_->fill(0xFF);
    lb_->fill(0xFF);
    uint64_t ws = kv_attention_decode_workspace_bytes(stream, batch_, hq_, d_, len_);
    if (ws_ == Workspace::kSmall) ws /= 3;
    ws_bytes_ = ws_ == Workspace::kNone ? 0 : ws;
    wsb_.reset();
    if (ws_bytes_ > 0) {
      wsb_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, ws_bytes_);
      wsb_->fill(0xFF);  // scratch starts as garbage
    }
  }

  void run(kv_stream_t stream) override {
    KVT_CHECK(kv_attention_decode_async(stream, dtype_, qb_->data(), kb_->data(), vb_->data(), ob_->data(),
                                        static_cast<float*>(lb_->data()), batch_, hq_, hkv_, d_, len_, scale(),
                                        wsb_ ? wsb_->data() : nullptr, ws_bytes_));
  }

  std::vector<std::string> verify() override {
    std::vector<std::string> failures;
    std::vector<float> o = read_floats(*ob_, dtype_, static_cast<size_t>(batch_) * hq_ * d_);
    std::vector<float> lse = lb_->download_all<float>();
    check_written(*ob_, o, "o", failures);
    if (!lb_->guards_intact()) failures.push_back("lse: canary changed");
    if (wsb_ && !wsb_->guards_intact()) failures.push_back("workspace: write past its end");
    StateRef ref = attention_reference(q_.values, k_.values, v_.values, batch_, hq_, hkv_, d_, len_, scale(), dtype_);
    CompareResult co = compare(o, ref.o, ref.o_bound, "o");
    CompareResult cl = compare(lse, ref.lse, ref.lse_bound, "lse");
    if (!co.ok) failures.push_back(co.message);
    if (!cl.ok) failures.push_back(cl.message);
    worst_ = std::max(co.worst_ratio, cl.worst_ratio);
    return failures;
  }
  double worst_error_ratio() const override { return worst_; }

  double bytes_moved() const override {
    const double sz = static_cast<double>(dtype_bytes(dtype_));
    return 2.0 * batch_ * len_ * hkv_ * d_ * sz + 2.0 * batch_ * hq_ * d_ * sz + batch_ * hq_ * 4.0;
  }
  Roofline roofline() const override { return Roofline::kRead; }

 private:
  float scale() const { return scale_mult_ / std::sqrt(static_cast<float>(d_)); }

  kv_dtype dtype_;
  int32_t batch_, hq_, hkv_, d_;
  int64_t len_;
  float scale_mult_;
  Workspace ws_;
  uint64_t ws_bytes_ = 0;
  double worst_ = 0.0;
  TypedData q_{KV_DTYPE_F32, {}}, k_{KV_DTYPE_F32, {}}, v_{KV_DTYPE_F32, {}};
  std::unique_ptr<GuardedBuffer> qb_, kb_, vb_, ob_, lb_, wsb_;
};

// ----------------------------------------------------------------------------- prefill

// Causal prefill attention over contiguous K/V. Small cases check every output row; large
// (perf) cases check every output for being written and a fixed sample of query tokens
// (the first and last rows, rows around tile and key-block boundaries, evenly spaced others)
// against the reference, which would otherwise take minutes.
class AttentionPrefillCase : public OpCase {
 public:
  AttentionPrefillCase(kv_dtype dtype, int32_t batch, int32_t q_len, int64_t kv_len, int32_t hq, int32_t hkv,
                       int32_t d, float scale_mult, bool sample_rows = false, double goal_tflops = 0.0)
      : dtype_(dtype), batch_(batch), q_len_(q_len), kv_len_(kv_len), hq_(hq), hkv_(hkv), d_(d),
        scale_mult_(scale_mult), sample_rows_(sample_rows), goal_tflops_(goal_tflops) {}

  std::string op() const override { return "attention_prefill"; }
  std::string params() const override {
    std::ostringstream s;
    s << "dtype=" << dtype_name(dtype_) << ",b=" << batch_ << ",q_len=" << q_len_ << ",kv_len=" << kv_len_
      << ",hq=" << hq_ << ",hkv=" << hkv_ << ",d=" << d_ << ",scale=" << scale_mult_ << "/sqrt(d)";
    return s.str();
  }

  void prepare(kv_stream_t stream, kv_backend backend, uint64_t seed) override {
    std::mt19937_64 rng(seed);
    q_ = random_typed(dtype_, q_elems(), rng, -1.f, 1.f);
    k_ = random_typed(dtype_, kv_elems(), rng, -1.f, 1.f);
    v_ = random_typed(dtype_, kv_elems(), rng, -1.f, 1.f);
    auto upload = [&](const TypedData& t) {
      auto raw = t.raw();
      auto b = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, std::max<size_t>(raw.size(), 1));
      if (!raw.empty()) b->upload(raw.data(), raw.size());
      return b;
    };
    qb_ = upload(q_);
    kb_ = upload(k_);
    vb_ = upload(v_);
    ob_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, std::max<size_t>(q_elems(), 1) * dtype_bytes(dtype_));
    lb_ = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, std::max<size_t>(rows(), 1) * 4);
    ob_->fill(0xFF);  // NaN: an element left unwritten is caught
    lb_->fill(0xFF);
  }

  void run(kv_stream_t stream) override {
    KVT_CHECK(kv_attention_prefill_async(stream, dtype_, qb_->data(), kb_->data(), vb_->data(), ob_->data(),
                                         static_cast<float*>(lb_->data()), batch_, q_len_, kv_len_, hq_, hkv_, d_,
                                         scale()));
  }

  std::vector<std::string> verify() override {
    std::vector<std::string> failures;
    std::vector<float> o = read_floats(*ob_, dtype_, q_elems());
    std::vector<float> lse = lb_->download_all<float>();
    lse.resize(rows());
    check_written(*ob_, o, "o", failures);
    check_written(*lb_, lse, "lse", failures);
    const std::vector<int64_t> tokens = checked_tokens();
    StateRef ref = prefill_reference(q_.values, k_.values, v_.values, batch_, q_len_, kv_len_, hq_, hkv_, d_, scale(),
                                     dtype_, tokens);
    // The outputs of the checked tokens, in the reference's row order.
    std::vector<float> o_sel, lse_sel;
    o_sel.reserve(ref.o.size());
    lse_sel.reserve(ref.lse.size());
    const size_t row_elems = static_cast<size_t>(hq_) * d_;
    for (int64_t t : tokens) {
      o_sel.insert(o_sel.end(), o.begin() + t * row_elems, o.begin() + (t + 1) * row_elems);
      lse_sel.insert(lse_sel.end(), lse.begin() + t * hq_, lse.begin() + (t + 1) * hq_);
    }
    CompareResult co = compare(o_sel, ref.o, ref.o_bound, "o");
    CompareResult cl = compare(lse_sel, ref.lse, ref.lse_bound, "lse");
    auto locate = [&](const CompareResult& c, int64_t per_row) {
      if (c.ok) return std::string();
      const int64_t row = c.first_bad / per_row;  // (checked token, head)
      const int64_t token = tokens[row / hq_];
      std::ostringstream s;
      s << " (batch " << token / q_len_ << ", query " << token % q_len_ << ", head " << row % hq_ << ")";
      return s.str();
    };
    if (!co.ok) failures.push_back(co.message + locate(co, d_));
    if (!cl.ok) failures.push_back(cl.message + locate(cl, 1));
    worst_ = std::max(co.worst_ratio, cl.worst_ratio);
    return failures;
  }
  double worst_error_ratio() const override { return worst_; }

  double bytes_moved() const override {
    const double sz = static_cast<double>(dtype_bytes(dtype_));
    return 2.0 * q_elems() * sz + 2.0 * kv_elems() * sz + rows() * 4.0;
  }
  // 4 d flops per unmasked (query, key) pair and head: 2 d for Q K^T, 2 d for P V.
  double flops() const override {
    const double pairs = static_cast<double>(q_len_) * (kv_len_ - q_len_) + 0.5 * q_len_ * (q_len_ + 1.0);
    return 4.0 * d_ * hq_ * batch_ * pairs;
  }
  Roofline roofline() const override { return Roofline::kCompute; }
  double goal_flops_per_s() const override { return goal_tflops_ * 1e12; }

 private:
  float scale() const { return scale_mult_ / std::sqrt(static_cast<float>(d_)); }
  size_t q_elems() const { return static_cast<size_t>(batch_) * q_len_ * hq_ * d_; }
  size_t kv_elems() const { return static_cast<size_t>(batch_) * kv_len_ * hkv_ * d_; }
  size_t rows() const { return static_cast<size_t>(batch_) * q_len_ * hq_; }

  std::vector<int64_t> checked_tokens() const {
    std::vector<int64_t> tokens;
    if (!sample_rows_) {
      for (int64_t t = 0; t < static_cast<int64_t>(batch_) * q_len_; ++t) tokens.push_back(t);
      return tokens;
    }
    std::vector<int64_t> queries = {0, 1, 63, 64, 127, 128, q_len_ / 2, q_len_ - 129, q_len_ - 128,
                                    q_len_ - 65, q_len_ - 64, q_len_ - 2, q_len_ - 1};
    for (int32_t j = 1; j < 8; ++j) queries.push_back(static_cast<int64_t>(q_len_) * j / 8 + j);
    std::sort(queries.begin(), queries.end());
    queries.erase(std::unique(queries.begin(), queries.end()), queries.end());
    for (int64_t b : {int64_t{0}, static_cast<int64_t>(batch_) - 1}) {
      for (int64_t i : queries)
        if (i >= 0 && i < q_len_) tokens.push_back(b * q_len_ + i);
      if (batch_ == 1) break;
    }
    return tokens;
  }

  kv_dtype dtype_;
  int32_t batch_, q_len_;
  int64_t kv_len_;
  int32_t hq_, hkv_, d_;
  float scale_mult_;
  bool sample_rows_;
  double goal_tflops_;
  double worst_ = 0.0;
  TypedData q_{KV_DTYPE_F32, {}}, k_{KV_DTYPE_F32, {}}, v_{KV_DTYPE_F32, {}};
  std::unique_ptr<GuardedBuffer> qb_, kb_, vb_, ob_, lb_;
};

// ----------------------------------------------------------------------------- page copy

enum class Indexing { kGather, kScatter, kBoth };

class PageCopyCase : public OpCase {
 public:
  PageCopyCase(uint64_t page_bytes, int64_t num_pages, int64_t src_cap, int64_t dst_cap, Indexing indexing,
               kv_mem_tier src_tier, kv_mem_tier dst_tier, double goal = 0.0, bool per_call_baseline = false)
      : page_bytes_(page_bytes), num_pages_(num_pages), src_cap_(src_cap), dst_cap_(dst_cap), indexing_(indexing),
        src_tier_(src_tier), dst_tier_(dst_tier), goal_(goal), per_call_(per_call_baseline) {}

  std::string op() const override { return per_call_ ? "page_copy_per_call_baseline" : "page_copy"; }
  std::string params() const override {
    auto tier = [](kv_mem_tier t) { return t == KV_MEM_DEVICE ? "device" : t == KV_MEM_PINNED_HOST ? "pinned" : "host"; };
    std::ostringstream s;
    s << "page_bytes=" << page_bytes_ << ",pages=" << num_pages_ << ",src=" << tier(src_tier_) << "[" << src_cap_
      << "],dst=" << tier(dst_tier_) << "[" << dst_cap_ << "],"
      << (indexing_ == Indexing::kGather ? "gather" : indexing_ == Indexing::kScatter ? "scatter" : "gather+scatter");
    return s.str();
  }

  void prepare(kv_stream_t stream, kv_backend backend, uint64_t seed) override {
    std::mt19937_64 rng(seed);
    auto random_bytes = [&](uint64_t n) {
      std::vector<unsigned char> v(n);
      for (uint64_t i = 0; i < n; i += 8) {
        uint64_t r = rng();
        std::memcpy(v.data() + i, &r, std::min<uint64_t>(8, n - i));
      }
      return v;
    };
    src_init_ = random_bytes(src_cap_ * page_bytes_);
    dst_init_ = random_bytes(dst_cap_ * page_bytes_);
    src_ = std::make_unique<GuardedBuffer>(stream, backend, src_tier_, src_init_.size());
    dst_ = std::make_unique<GuardedBuffer>(stream, backend, dst_tier_, dst_init_.size());
    src_->upload(src_init_.data(), src_init_.size());
    dst_->upload(dst_init_.data(), dst_init_.size());
    // Sources may repeat (one page recalled into two slots); destinations never do.
    auto distinct = [&](int64_t cap) {
      std::vector<int64_t> all(cap);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      all.resize(num_pages_);
      return all;
    };
    src_idx_.clear();
    dst_idx_.clear();
    if (indexing_ != Indexing::kScatter) {
      src_idx_ = distinct(src_cap_);
      if (num_pages_ > 1) src_idx_[num_pages_ - 1] = src_idx_[0];
    }
    if (indexing_ != Indexing::kGather) dst_idx_ = distinct(dst_cap_);
    auto put_indices = [&](const std::vector<int64_t>& idx) -> std::unique_ptr<GuardedBuffer> {
      if (idx.empty()) return nullptr;
      auto b = std::make_unique<GuardedBuffer>(stream, backend, KV_MEM_DEVICE, idx.size() * sizeof(int64_t));
      b->upload(idx);
      return b;
    };
    src_idx_buf_ = put_indices(src_idx_);
    dst_idx_buf_ = put_indices(dst_idx_);
  }

  void run(kv_stream_t stream) override {
    if (per_call_) {
      // The baseline a batched copy replaces: one copy call per page.
      auto* dst = static_cast<unsigned char*>(dst_->data());
      auto* src = static_cast<const unsigned char*>(src_->data());
      for (int64_t i = 0; i < num_pages_; ++i) {
        int64_t s = src_idx_.empty() ? i : src_idx_[i], d = dst_idx_.empty() ? i : dst_idx_[i];
        KVT_CHECK(kv_memcpy_async(stream, dst + d * page_bytes_, src + s * page_bytes_, page_bytes_));
      }
      return;
    }
    KVT_CHECK(kv_page_copy_async(stream, dst_->data(), dst_cap_, src_->data(), src_cap_, page_bytes_,
                                 src_idx_buf_ ? static_cast<const int64_t*>(src_idx_buf_->data()) : nullptr,
                                 dst_idx_buf_ ? static_cast<const int64_t*>(dst_idx_buf_->data()) : nullptr,
                                 num_pages_));
  }

  std::vector<std::string> verify() override {
    std::vector<std::string> failures;
    std::vector<unsigned char> expect = dst_init_;
    for (int64_t i = 0; i < num_pages_; ++i) {
      int64_t s = src_idx_.empty() ? i : src_idx_[i], d = dst_idx_.empty() ? i : dst_idx_[i];
      std::copy_n(src_init_.begin() + s * page_bytes_, page_bytes_, expect.begin() + d * page_bytes_);
    }
    std::vector<unsigned char> got(expect.size());
    dst_->download(got.data(), got.size());
    if (!dst_->guards_intact()) failures.push_back("dst: write outside the region (canary changed)");
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] != expect[i]) {
        failures.push_back("dst byte " + std::to_string(i) + " (page " + std::to_string(i / page_bytes_) +
                           ") differs from the expected copy");
        break;
      }
    }
    std::vector<unsigned char> src_after(src_init_.size());
    src_->download(src_after.data(), src_after.size());
    if (src_after != src_init_) failures.push_back("src was modified");
    return failures;
  }

  double bytes_moved() const override {
    const double payload = static_cast<double>(num_pages_) * page_bytes_;
    return roofline() == Roofline::kCopy ? 2 * payload : payload;  // a device copy reads and writes
  }
  Roofline roofline() const override {
    if (src_tier_ == KV_MEM_DEVICE && dst_tier_ == KV_MEM_DEVICE) return Roofline::kCopy;
    return src_tier_ == KV_MEM_DEVICE ? Roofline::kDeviceToHost : Roofline::kHostToDevice;
  }
  double goal() const override { return goal_; }
  bool is_baseline() const override { return per_call_; }

 private:
  uint64_t page_bytes_;
  int64_t num_pages_, src_cap_, dst_cap_;
  Indexing indexing_;
  kv_mem_tier src_tier_, dst_tier_;
  double goal_;
  bool per_call_;
  std::vector<unsigned char> src_init_, dst_init_;
  std::vector<int64_t> src_idx_, dst_idx_;
  std::unique_ptr<GuardedBuffer> src_, dst_, src_idx_buf_, dst_idx_buf_;
};

template <typename T, typename... Args>
CaseEntry entry(Args... args) {
  std::string name = T(args...).name();
  return {name, [=] { return std::unique_ptr<OpCase>(new T(args...)); }};
}

}  // namespace

std::vector<CaseEntry> test_cases() {
  std::vector<CaseEntry> cases;
  for (kv_dtype t : {KV_DTYPE_F32, KV_DTYPE_BF16}) {
    // Odd row counts, every vector path (d % 8 == 0) and the scalar path (d = 5, 72 + 3).
    for (int32_t d : {64, 128, 256, 5, 75}) {
      cases.push_back(entry<MergeCase>(MergeKind::kPair, t, 2, int64_t{37}, d, 0.2, 30.f));
      cases.push_back(entry<MergeCase>(MergeKind::kInPlace, t, 2, int64_t{101}, d, 0.2, 30.f));
    }
    for (int32_t n : {1, 3, 8, 33})
      cases.push_back(entry<MergeCase>(MergeKind::kNWay, t, n, int64_t{1000 + n}, 128, 0.25, 40.f));
    cases.push_back(entry<MergeCase>(MergeKind::kNWay, t, 5, int64_t{1}, 256, 0.0, 5.f));
    cases.push_back(entry<MergeCase>(MergeKind::kNWay, t, 4, int64_t{63}, 64, 0.9, 5.f));  // mostly empty rows

    for (int32_t d : {64, 128, 256}) {
      // (hq, hkv): MHA, GQA 4 (Llama 3), GQA 8, odd group 6 (tile 2), prime group 7 (tile 1).
      const int32_t shapes[][2] = {{4, 4}, {8, 2}, {32, 4}, {12, 2}, {7, 1}};
      for (const auto& hs : shapes) {
        cases.push_back(entry<AttentionDecodeCase>(t, 2, hs[0], hs[1], d, int64_t{77}, 1.f, Workspace::kNone));
        cases.push_back(entry<AttentionDecodeCase>(t, 1, hs[0], hs[1], d, int64_t{1500}, 4.f, Workspace::kFull));
      }
      cases.push_back(entry<AttentionDecodeCase>(t, 3, 8, 2, d, int64_t{1}, 1.f, Workspace::kFull));
      cases.push_back(entry<AttentionDecodeCase>(t, 1, 8, 1, d, int64_t{0}, 1.f, Workspace::kFull));
      cases.push_back(entry<AttentionDecodeCase>(t, 1, 16, 2, d, int64_t{4099}, 8.f, Workspace::kSmall));
    }
  }
  for (kv_dtype t : {KV_DTYPE_F32, KV_DTYPE_BF16}) {
    // Prefill: (b, q_len, kv_len, hq, hkv, scale). The CUDA tensor-core tile is 128 queries x
    // 64 keys: whole prompts (q_len = kv_len) and chunks after a cached prefix (q_len < kv_len),
    // q_len below, at and past one tile, kv_len off the 64-key grid, GQA groups 1, 3, 4, 7,
    // odd head counts, single-query rows, batches.
    struct Shape {
      int32_t b, q_len;
      int64_t kv_len;
      int32_t hq, hkv;
      float scale;
    };
    const Shape shapes[] = {{1, 77, 77, 4, 4, 1.f},    {2, 40, 200, 8, 2, 1.f},  {1, 130, 130, 12, 4, 4.f},
                            {3, 1, 65, 7, 1, 1.f},     {1, 128, 192, 2, 1, 1.f}, {2, 129, 321, 3, 3, 8.f},
                            {1, 5, 5, 2, 1, 1.f}};
    for (int32_t d : {64, 128, 256})
      for (const Shape& sh : shapes)
        cases.push_back(entry<AttentionPrefillCase>(t, sh.b, sh.q_len, sh.kv_len, sh.hq, sh.hkv, d, sh.scale));
    // Long: several query tiles and key blocks per row, whole prompt and chunk.
    cases.push_back(entry<AttentionPrefillCase>(t, 1, 1000, int64_t{1000}, 4, 1, 128, 1.f));
    cases.push_back(entry<AttentionPrefillCase>(t, 2, 1000, int64_t{1100}, 2, 2, 64, 2.f));
  }
  for (kv_mem_tier src : {KV_MEM_DEVICE, KV_MEM_PINNED_HOST})
    for (kv_mem_tier dst : {KV_MEM_DEVICE, KV_MEM_PINNED_HOST}) {
      for (Indexing ix : {Indexing::kGather, Indexing::kScatter, Indexing::kBoth})
        cases.push_back(entry<PageCopyCase>(uint64_t{4096}, int64_t{37}, int64_t{64}, int64_t{50}, ix, src, dst));
      cases.push_back(entry<PageCopyCase>(uint64_t{100}, int64_t{33}, int64_t{40}, int64_t{40}, Indexing::kBoth, src, dst));
      cases.push_back(entry<PageCopyCase>(uint64_t{4100}, int64_t{9}, int64_t{20}, int64_t{12}, Indexing::kBoth, src, dst));
      cases.push_back(entry<PageCopyCase>(uint64_t{65536 + 16}, int64_t{5}, int64_t{8}, int64_t{7}, Indexing::kBoth, src, dst));
    }
  cases.push_back(entry<PageCopyCase>(uint64_t{16}, int64_t{1000}, int64_t{1000}, int64_t{1000}, Indexing::kGather,
                                      KV_MEM_DEVICE, KV_MEM_DEVICE));
  return cases;
}

std::vector<CaseEntry> perf_cases() {
  std::vector<CaseEntry> cases;
  // Issue 2 acceptance: N-way merge of 4096 tokens x 32 heads x 128 dims, N = 2, 8, 32,
  // against device copy bandwidth, goal 80%.
  const int64_t rows = 4096 * 32;
  for (kv_dtype t : {KV_DTYPE_BF16, KV_DTYPE_F32})
    for (int32_t n : {2, 8, 32}) cases.push_back(entry<MergeCase>(MergeKind::kNWay, t, n, rows, 128, 0.0, 5.f, 0.8));
  cases.push_back(entry<MergeCase>(MergeKind::kInPlace, KV_DTYPE_BF16, 2, rows, 128, 0.0, 5.f, 0.8));

  // Batched page gather, 4 KiB to 256 KiB pages, 256 MiB per call: pinned host -> device
  // against pinned H2D bandwidth (goal 85% at 16 KiB), device -> device against copy
  // bandwidth, device -> pinned host against D2H; with the one-call-per-page baseline.
  const uint64_t total = uint64_t{256} << 20;
  for (uint64_t page : {uint64_t{4} << 10, uint64_t{16} << 10, uint64_t{64} << 10, uint64_t{256} << 10}) {
    const int64_t pages = static_cast<int64_t>(total / page);
    const double h2d_goal = page == (uint64_t{16} << 10) ? 0.85 : 0.0;
    cases.push_back(entry<PageCopyCase>(page, pages, 2 * pages, pages, Indexing::kGather, KV_MEM_PINNED_HOST,
                                        KV_MEM_DEVICE, h2d_goal, false));
    cases.push_back(entry<PageCopyCase>(page, pages, 2 * pages, pages, Indexing::kGather, KV_MEM_DEVICE,
                                        KV_MEM_DEVICE, 0.0, false));
    cases.push_back(entry<PageCopyCase>(page, pages, pages, 2 * pages, Indexing::kScatter, KV_MEM_DEVICE,
                                        KV_MEM_PINNED_HOST, 0.0, false));
    cases.push_back(entry<PageCopyCase>(page, pages, 2 * pages, pages, Indexing::kGather, KV_MEM_PINNED_HOST,
                                        KV_MEM_DEVICE, 0.0, true));
  }
  // Decode attention over a long context, against read bandwidth (no goal in this issue).
  for (kv_dtype t : {KV_DTYPE_BF16, KV_DTYPE_F32}) {
    cases.push_back(entry<AttentionDecodeCase>(t, 1, 32, 8, 128, int64_t{32768}, 1.f, Workspace::kFull));
    cases.push_back(entry<AttentionDecodeCase>(t, 16, 32, 8, 128, int64_t{8192}, 1.f, Workspace::kFull));
  }
  // Causal prefill, bf16, against the bf16 tensor rate (achieved TFLOP/s only while the probe
  // does not measure one). Acceptance: q_len = kv_len = 8192, 32 q / 8 kv heads, head_dim 128,
  // >= 300 TFLOP/s on an H200. Rows are sampled for verification (see AttentionPrefillCase).
  cases.push_back(entry<AttentionPrefillCase>(KV_DTYPE_BF16, 1, 8192, int64_t{8192}, 32, 8, 128, 1.f, true, 300.0));
  cases.push_back(entry<AttentionPrefillCase>(KV_DTYPE_BF16, 1, 8192, int64_t{8192}, 32, 8, 64, 1.f, true, 0.0));
  cases.push_back(entry<AttentionPrefillCase>(KV_DTYPE_BF16, 4, 2048, int64_t{2048}, 32, 8, 128, 1.f, true, 0.0));
  cases.push_back(entry<AttentionPrefillCase>(KV_DTYPE_BF16, 1, 2048, int64_t{8192}, 32, 8, 128, 1.f, true, 0.0));
  cases.push_back(entry<AttentionPrefillCase>(KV_DTYPE_BF16, 16, 512, int64_t{512}, 32, 8, 128, 1.f, true, 0.0));
  return cases;
}

}  // namespace kvt
