// Quest operations (kv_page_summary_update_async, kv_quest_select_async) on every target
// (cpu_scalar, cpu_avx2, cuda; CUDA cases skip without a device) against independent
// double-precision references written here. Outputs are poisoned (0xFF) before each call: every
// output must be written and nothing else touched; canaries guard the buffers.
//
// Tolerances: summaries are min/max of stored values, so they must match bit for bit. Page scores
// are sums of head_dim products in fp32; the selection is compared exactly on inputs whose
// scores are exact in fp32 (small integers: products <= 12, sums < 2^12), and on random inputs
// only up to the fp32 error bound of the scores: |fl(s) - s| <= (D + 1) * 2^-24 * sum |terms|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace kvt {
namespace {

// ------------------------------------------------------------------ references

// Channel-wise min and max of K rows [0, valid) of one (page, head): 2*D values.
std::vector<double> ref_summary(const std::vector<float>& k, int64_t row0, int64_t token_stride, int32_t valid, int32_t d) {
  std::vector<double> out(2 * d);
  for (int32_t c = 0; c < d; ++c) {
    double lo = k[row0 + c], hi = k[row0 + c];
    for (int32_t t = 1; t < valid; ++t) {
      const double x = k[row0 + t * token_stride + c];
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    out[c] = lo;
    out[d + c] = hi;
  }
  return out;
}

// Score of one page for one GQA group (q rows g*D..), and the sum of |terms| for the error bound.
double ref_score(const float* q, int32_t group, const float* lo, const float* hi, int32_t d, double* abs_sum) {
  double best = -INFINITY;
  double worst_abs = 0;
  for (int32_t g = 0; g < group; ++g) {
    double s = 0, a = 0;
    for (int32_t c = 0; c < d; ++c) {
      const double x = q[g * d + c];
      const double t = std::max(x * lo[c], x * hi[c]);
      s += t;
      a += std::fabs(t);
    }
    best = std::max(best, s);
    worst_abs = std::max(worst_abs, a);
  }
  if (abs_sum) *abs_sum = worst_abs;
  return best;
}

// Reference selection from scores of pages [0, n-1): top_k - 1 best (ties: lower j) + n - 1.
std::vector<int32_t> ref_select(const std::vector<double>& scores, int64_t n, int32_t top_k) {
  std::vector<int32_t> out;
  if (n <= top_k) {
    for (int64_t j = 0; j < n; ++j) out.push_back(static_cast<int32_t>(j));
    return out;
  }
  std::vector<int32_t> order(static_cast<size_t>(n - 1));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return scores[x] > scores[y]; });
  out.assign(order.begin(), order.begin() + (top_k - 1));
  std::sort(out.begin(), out.end());
  out.push_back(static_cast<int32_t>(n - 1));
  return out;
}

// ------------------------------------------------------------------ fixtures

class QuestTest : public ::testing::TestWithParam<Target> {
 public:
  void SetUp() override {
    const std::string why = unavailable_reason(GetParam());
    if (!why.empty()) GTEST_SKIP() << why;
    stream_ = std::make_unique<StreamHolder>(GetParam());
    seed_ = seed_for(std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    RecordProperty("seed", std::to_string(seed_));
    rng_.seed(seed_);
  }
  kv_stream_t s() const { return stream_->get(); }
  kv_backend backend() const { return GetParam().backend; }
  std::unique_ptr<GuardedBuffer> buffer(uint64_t bytes) {
    return std::make_unique<GuardedBuffer>(s(), backend(), KV_MEM_DEVICE, std::max<uint64_t>(bytes, 16));
  }
  std::string where() const {
    std::ostringstream o;
    o << GetParam().name() << " seed " << seed_ << " (KVASIR_TEST_SEED=" << base_seed() << ")";
    return o.str();
  }

  std::unique_ptr<StreamHolder> stream_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

// A pool of num_pages pages in Kvasir's layout: head-major ([page][head][token][D]) or
// single-head pages ([page][token][D], head_stride 0).
struct Pool {
  kv_dtype dtype;
  int32_t pages, p, heads, d;
  bool single_head;
  TypedData k;
  std::unique_ptr<GuardedBuffer> k_buf, v_buf;
  kv_paged_kv desc{};

  int64_t stored_heads() const { return single_head ? 1 : heads; }
  int64_t row(int64_t page, int32_t h, int32_t t) const {
    return page * desc.page_stride + h * desc.head_stride + t * desc.token_stride;
  }
};

Pool make_pool(QuestTest& f, std::mt19937_64& rng, kv_dtype dtype, int32_t pages, int32_t p, int32_t heads, int32_t d,
               bool single_head, float lo, float hi, bool integers = false) {
  Pool pool{dtype, pages, p, heads, d, single_head, {}, nullptr, nullptr, {}};
  const int64_t page_elems = pool.stored_heads() * p * d;
  const size_t n = static_cast<size_t>(pages * page_elems);
  pool.k = random_typed(dtype, n, rng, lo, hi);
  if (integers)
    for (auto& x : pool.k.values) x = std::round(x);
  const auto raw = pool.k.raw();
  pool.k_buf = f.buffer(raw.size());
  pool.k_buf->upload(raw.data(), raw.size());
  pool.v_buf = f.buffer(raw.size());
  pool.desc.k_pages = pool.k_buf->data();
  pool.desc.v_pages = pool.v_buf->data();
  pool.desc.num_pages = pages;
  pool.desc.page_tokens = p;
  pool.desc.num_kv_heads = heads;
  pool.desc.head_dim = d;
  pool.desc.page_stride = page_elems;
  pool.desc.head_stride = single_head ? 0 : static_cast<int64_t>(p) * d;
  pool.desc.token_stride = d;
  return pool;
}

// Summaries with gaps between rows and pages (padding must stay untouched).
struct Summaries {
  kv_page_summaries desc{};
  std::unique_ptr<GuardedBuffer> buf;
  int64_t elems = 0;
};

Summaries make_summaries(QuestTest& f, const Pool& pool) {
  Summaries s;
  const int64_t row = 2 * pool.d;
  s.desc.head_stride = pool.single_head ? 0 : row + 8;
  s.desc.page_stride = (pool.stored_heads() - 1) * s.desc.head_stride + row + 16;
  s.elems = s.desc.page_stride * pool.pages;
  s.buf = f.buffer(static_cast<uint64_t>(s.elems) * dtype_bytes(pool.dtype));
  s.desc.data = s.buf->data();
  return s;
}

// Raw element bits of a value in a dtype (as 32 bits).
uint32_t value_bits(kv_dtype dtype, double x) {
  const float f = static_cast<float>(x);
  if (dtype == KV_DTYPE_BF16) return to_bf16(f);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint32_t element_bits(kv_dtype dtype, const std::vector<unsigned char>& raw, int64_t i) {
  if (dtype == KV_DTYPE_BF16) {
    uint16_t h;
    std::memcpy(&h, raw.data() + 2 * i, 2);
    return h;
  }
  uint32_t u;
  std::memcpy(&u, raw.data() + 4 * i, 4);
  return u;
}

// ------------------------------------------------------------------ summary update

TEST_P(QuestTest, SummaryUpdateMatchesNaiveBitExact) {
  for (kv_dtype dtype : {KV_DTYPE_F32, KV_DTYPE_BF16})
    for (int32_t d : {64, 128, 256})
      for (bool single : {false, true})
        for (int32_t p : {16, 5}) {
          SCOPED_TRACE(std::string(dtype_name(dtype)) + " D=" + std::to_string(d) + (single ? " single-head" : " shared") +
                       " P=" + std::to_string(p) + " on " + where());
          const int32_t pages = 12, heads = 3;
          Pool pool = make_pool(*this, rng_, dtype, pages, p, heads, d, single, -3.f, 3.f);
          Summaries sum = make_summaries(*this, pool);
          sum.buf->fill(0xFF);
          // A random subset of pages with valid counts covering 1 and P.
          std::vector<int32_t> list(pages);
          std::iota(list.begin(), list.end(), 0);
          std::shuffle(list.begin(), list.end(), rng_);
          list.resize(7);
          std::vector<int32_t> valid(list.size());
          for (size_t i = 0; i < valid.size(); ++i)
            valid[i] = i == 0 ? 1 : i == 1 ? p : std::uniform_int_distribution<int32_t>(1, p)(rng_);
          auto pages_buf = buffer(list.size() * 4), valid_buf = buffer(valid.size() * 4);
          pages_buf->upload(list);
          valid_buf->upload(valid);
          ASSERT_EQ(kv_page_summary_update_async(s(), dtype, &pool.desc, static_cast<const int32_t*>(pages_buf->data()),
                                                 static_cast<const int32_t*>(valid_buf->data()),
                                                 static_cast<int32_t>(list.size()), &sum.desc),
                    KV_STATUS_OK)
              << kv_last_error();
          ASSERT_EQ(kv_stream_synchronize(s()), KV_STATUS_OK) << kv_last_error();
          std::vector<unsigned char> raw(static_cast<size_t>(sum.elems) * dtype_bytes(dtype));
          sum.buf->download(raw.data(), raw.size());
          std::vector<char> expect_written(static_cast<size_t>(sum.elems), 0);
          int mismatches = 0;
          for (size_t i = 0; i < list.size(); ++i)
            for (int32_t h = 0; h < pool.stored_heads(); ++h) {
              const auto ref = ref_summary(pool.k.values, pool.row(list[i], h, 0), d, valid[i], d);
              const int64_t base = list[i] * sum.desc.page_stride + h * sum.desc.head_stride;
              for (int32_t c = 0; c < 2 * d; ++c) {
                expect_written[base + c] = 1;
                if (element_bits(dtype, raw, base + c) != value_bits(dtype, ref[c]) && ++mismatches <= 5)
                  ADD_FAILURE() << "page " << list[i] << " head " << h << (c < d ? " min" : " max") << " channel "
                                << c % d << ": got bits " << element_bits(dtype, raw, base + c) << ", want " << ref[c];
              }
            }
          const uint32_t poison = dtype == KV_DTYPE_BF16 ? 0xFFFFu : 0xFFFFFFFFu;
          for (int64_t e = 0; e < sum.elems; ++e)
            if (!expect_written[e] && element_bits(dtype, raw, e) != poison && ++mismatches <= 10)
              ADD_FAILURE() << "element " << e << " outside the listed summaries was written";
          EXPECT_TRUE(sum.buf->guards_intact());
          EXPECT_EQ(mismatches, 0);
        }
}

// ------------------------------------------------------------------ selection

struct SelectCase {
  kv_dtype dtype;
  int32_t d, group, heads, batch, p, top_k;
  bool per_head;              // per-head tables over single-head pages
  std::vector<int32_t> lens;  // [batch]
  bool integers;              // scores exact in fp32
};

struct SelectRun {
  std::vector<int32_t> counts, indices;  // as returned
  std::vector<std::vector<double>> scores, bounds;  // [b*H+h][j] reference score and error bound
  std::vector<int64_t> n;                           // pages per (b, h)
};

// Builds random summaries (min <= max) and q, runs the selection, returns outputs + reference
// scores. With summaries_from_k the summaries are computed by kv_page_summary_update_async from
// random K instead.
SelectRun run_select(QuestTest& f, std::mt19937_64& rng, const SelectCase& c, bool summaries_from_k = false,
                     Pool* pool_out = nullptr, std::vector<float>* q_out = nullptr) {
  const int32_t max_len = *std::max_element(c.lens.begin(), c.lens.end());
  const int64_t max_pages = (max_len + c.p - 1) / c.p;
  const int32_t pages_per_head_seq = static_cast<int32_t>(std::max<int64_t>(max_pages, 1));
  // Physical pages: every (b, h) (or every b for shared tables) gets its own pages, shuffled.
  const int32_t owners = c.per_head ? c.batch * c.heads : c.batch;
  const int32_t num_pages = owners * pages_per_head_seq + 3;
  const float lo = c.integers ? -4.f : -2.f, hi = c.integers ? 4.f : 2.f;
  Pool pool = make_pool(f, rng, c.dtype, num_pages, c.p, c.heads, c.d, c.per_head, lo, hi, c.integers);
  Summaries sum = make_summaries(f, pool);
  const int64_t sum_row = 2 * c.d;
  std::vector<float> sum_vals(static_cast<size_t>(sum.elems), 0.f);
  if (summaries_from_k) {
    std::vector<int32_t> all(num_pages), valid(num_pages, c.p);
    std::iota(all.begin(), all.end(), 0);
    auto pb = f.buffer(all.size() * 4), vb = f.buffer(valid.size() * 4);
    pb->upload(all);
    vb->upload(valid);
    KVT_CHECK(kv_page_summary_update_async(f.s(), c.dtype, &pool.desc, static_cast<const int32_t*>(pb->data()),
                                           static_cast<const int32_t*>(vb->data()), num_pages, &sum.desc));
    std::vector<unsigned char> raw(static_cast<size_t>(sum.elems) * dtype_bytes(c.dtype));
    sum.buf->download(raw.data(), raw.size());
    sum_vals = TypedData::from_raw(c.dtype, raw).values;
  } else {
    for (int32_t pg = 0; pg < num_pages; ++pg)
      for (int32_t h = 0; h < pool.stored_heads(); ++h) {
        const int64_t base = pg * sum.desc.page_stride + h * sum.desc.head_stride;
        TypedData a = random_typed(c.dtype, 2 * c.d, rng, lo, hi);
        for (int32_t ch = 0; ch < c.d; ++ch) {
          float x = a.values[ch], y = a.values[c.d + ch];
          if (c.integers) x = std::round(x), y = std::round(y);
          sum_vals[base + ch] = std::min(x, y);
          sum_vals[base + c.d + ch] = std::max(x, y);
        }
      }
    const auto raw = TypedData{c.dtype, sum_vals}.raw();
    sum.buf->upload(raw.data(), raw.size());
  }
  (void)sum_row;
  // Page tables: a random permutation of the owner's pages.
  const int64_t seq_stride = c.per_head ? static_cast<int64_t>(c.heads) * pages_per_head_seq : pages_per_head_seq;
  std::vector<int32_t> table(static_cast<size_t>(c.batch * seq_stride));
  std::vector<int32_t> perm(num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (size_t i = 0; i < table.size(); ++i) table[i] = perm[i];
  auto table_buf = f.buffer(table.size() * 4), lens_buf = f.buffer(c.lens.size() * 4);
  table_buf->upload(table);
  lens_buf->upload(c.lens);
  kv_page_table t{static_cast<const int32_t*>(table_buf->data()), seq_stride, c.per_head ? pages_per_head_seq : 0,
                  static_cast<const int32_t*>(lens_buf->data())};
  const int32_t hq = c.heads * c.group;
  TypedData q = random_typed(c.dtype, static_cast<size_t>(c.batch) * hq * c.d, rng, c.integers ? -3.f : -1.f,
                             c.integers ? 3.f : 1.f);
  if (c.integers)
    for (auto& x : q.values) x = std::round(x);
  auto q_buf = f.buffer(q.values.size() * dtype_bytes(c.dtype));
  const auto q_raw = q.raw();
  q_buf->upload(q_raw.data(), q_raw.size());
  const int32_t out_stride = c.top_k + 3;
  const int64_t rows = static_cast<int64_t>(c.batch) * c.heads;
  auto idx_buf = f.buffer(rows * out_stride * 4), cnt_buf = f.buffer(rows * 4);
  idx_buf->fill(0xFF);
  cnt_buf->fill(0xFF);
  const uint64_t ws_bytes = kv_quest_select_workspace_bytes(f.s(), c.batch, c.heads, c.p, max_len);
  auto ws = f.buffer(ws_bytes);
  ws->fill(0xFF);
  EXPECT_EQ(kv_quest_select_async(f.s(), c.dtype, q_buf->data(), &pool.desc, &t, &sum.desc, c.batch, hq, max_len,
                                  c.top_k, static_cast<int32_t*>(idx_buf->data()), static_cast<int32_t*>(cnt_buf->data()),
                                  out_stride, ws_bytes ? ws->data() : nullptr, ws_bytes),
            KV_STATUS_OK)
      << kv_last_error();
  EXPECT_EQ(kv_stream_synchronize(f.s()), KV_STATUS_OK) << kv_last_error();
  SelectRun r;
  r.counts = cnt_buf->download_all<int32_t>();
  r.counts.resize(rows);
  const auto all_idx = idx_buf->download_all<int32_t>();
  EXPECT_TRUE(idx_buf->guards_intact());
  EXPECT_TRUE(cnt_buf->guards_intact());
  EXPECT_TRUE(ws->guards_intact());
  r.indices.assign(all_idx.begin(), all_idx.begin() + rows * out_stride);
  for (int32_t b = 0; b < c.batch; ++b)
    for (int32_t h = 0; h < c.heads; ++h) {
      const int64_t n = (c.lens[b] + c.p - 1) / c.p;
      r.n.push_back(n);
      std::vector<double> sc, bd;
      for (int64_t j = 0; j + 1 < n; ++j) {
        const int32_t page = table[b * seq_stride + (c.per_head ? h * pages_per_head_seq : 0) + j];
        const int64_t base = page * sum.desc.page_stride + (c.per_head ? 0 : h * sum.desc.head_stride);
        double abs_sum = 0;
        sc.push_back(ref_score(q.values.data() + (static_cast<int64_t>(b) * hq + h * c.group) * c.d, c.group,
                               sum_vals.data() + base, sum_vals.data() + base + c.d, c.d, &abs_sum));
        bd.push_back((c.d + 2) * std::ldexp(1.0, -24) * abs_sum);
      }
      r.scores.push_back(sc);
      r.bounds.push_back(bd);
    }
  if (pool_out) *pool_out = std::move(pool);
  if (q_out) *q_out = q.values;
  return r;
}

std::string join(const std::vector<int32_t>& v) {
  std::ostringstream o;
  for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
  return o.str();
}

// Exact comparison against the reference, plus: entries past the count untouched (poison -1).
void expect_exact(const SelectCase& c, const SelectRun& r) {
  const int32_t out_stride = c.top_k + 3;
  for (size_t row = 0; row < r.n.size(); ++row) {
    const auto want = ref_select(r.scores[row], r.n[row], c.top_k);
    ASSERT_EQ(r.counts[row], static_cast<int32_t>(want.size())) << "row " << row << " n=" << r.n[row];
    const std::vector<int32_t> got(r.indices.begin() + row * out_stride,
                                   r.indices.begin() + row * out_stride + r.counts[row]);
    EXPECT_EQ(join(got), join(want)) << "row " << row << " n=" << r.n[row];
    for (int32_t i = r.counts[row]; i < out_stride; ++i)
      EXPECT_EQ(r.indices[row * out_stride + i], -1) << "row " << row << " entry " << i << " past the count was written";
  }
}

// Random (inexact) scores: a valid selection whose every chosen page scores at least as well as
// every page left out, up to the two pages' fp32 error bounds.
void expect_consistent(const SelectCase& c, const SelectRun& r) {
  const int32_t out_stride = c.top_k + 3;
  for (size_t row = 0; row < r.n.size(); ++row) {
    const int64_t n = r.n[row];
    const int32_t want_count = static_cast<int32_t>(std::min<int64_t>(n, c.top_k));
    ASSERT_EQ(r.counts[row], want_count) << "row " << row;
    std::vector<int32_t> got(r.indices.begin() + row * out_stride, r.indices.begin() + row * out_stride + want_count);
    ASSERT_TRUE(std::is_sorted(got.begin(), got.end()) && std::adjacent_find(got.begin(), got.end()) == got.end())
        << "row " << row << ": " << join(got);
    if (n == 0) continue;
    ASSERT_EQ(got.back(), n - 1) << "row " << row << ": the newest page is missing";
    ASSERT_GE(got.front(), 0);
    if (n <= c.top_k) continue;
    std::vector<char> chosen(static_cast<size_t>(n), 0);
    for (int32_t j : got) chosen[j] = 1;
    double worst_chosen = INFINITY, best_left = -INFINITY, bound_c = 0, bound_l = 0;
    for (int64_t j = 0; j + 1 < n; ++j) {
      if (chosen[j] && r.scores[row][j] < worst_chosen) worst_chosen = r.scores[row][j], bound_c = r.bounds[row][j];
      if (!chosen[j] && r.scores[row][j] > best_left) best_left = r.scores[row][j], bound_l = r.bounds[row][j];
    }
    if (c.top_k > 1) {
      EXPECT_GE(worst_chosen, best_left - bound_c - bound_l) << "row " << row << ": a better page was left out";
    }
  }
}

TEST_P(QuestTest, SelectExactScoresMatchReference) {
  for (kv_dtype dtype : {KV_DTYPE_F32, KV_DTYPE_BF16})
    for (int32_t d : {64, 128, 256})
      for (int32_t group : {1, 4, 8})
        for (bool per_head : {false, true}) {
          const int32_t p = 16;
          SelectCase c{dtype, d, group, 2, 6, p, 8, per_head, {0, 1, p, p + 1, 40 * p + 3, 9 * p}, true};
          c.top_k = std::uniform_int_distribution<int32_t>(0, 2)(rng_) == 0 ? 1 : 8;
          SCOPED_TRACE(std::string(dtype_name(dtype)) + " D=" + std::to_string(d) + " G=" + std::to_string(group) +
                       (per_head ? " per-head tables" : " shared table") + " top_k=" + std::to_string(c.top_k) +
                       " on " + where());
          SelectRun r = run_select(*this, rng_, c);
          expect_exact(c, r);
        }
}

TEST_P(QuestTest, SelectExactLongSequencesManySplits) {
  // Thousands of pages per sequence (P = 1 keeps the pool small): the CUDA score kernel splits
  // each sequence over several blocks with several passes each, and the select kernel scans
  // many tiles; lengths differ per sequence.
  const int32_t batch = 40;
  SelectCase c{KV_DTYPE_BF16, 64, 4, 2, batch, 1, 64, false, {}, true};
  for (int32_t b = 0; b < batch; ++b) c.lens.push_back(std::uniform_int_distribution<int32_t>(600, 2600)(rng_));
  c.lens[0] = 2600;
  SCOPED_TRACE(where());
  SelectRun r = run_select(*this, rng_, c);
  expect_exact(c, r);
}

TEST_P(QuestTest, SelectTopKCoversShortSequences) {
  // top_k >= pages: every page, ascending; kv_len 0 gives an empty selection.
  const int32_t p = 8;
  SelectCase c{KV_DTYPE_BF16, 128, 4, 2, 5, p, 64, false, {0, 1, p, p + 1, 64 * p}, true};
  SCOPED_TRACE(where());
  SelectRun r = run_select(*this, rng_, c);
  expect_exact(c, r);
  EXPECT_EQ(r.counts[0], 0);
  EXPECT_EQ(r.counts[2], 1);
  EXPECT_EQ(r.counts[2 * 2], 1);
  EXPECT_EQ(r.counts[3 * 2], 2);
  EXPECT_EQ(r.counts[4 * 2], 64);
}

TEST_P(QuestTest, SelectTiesGoToLowerPages) {
  // q = 0 makes every score 0: the top_k - 1 lowest pages plus the newest.
  for (kv_dtype dtype : {KV_DTYPE_F32, KV_DTYPE_BF16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)) + " on " + where());
    const int32_t p = 16, heads = 2, d = 64, top_k = 5, len = 300 * p;
    Pool pool = make_pool(*this, rng_, dtype, 301 * heads, p, heads, d, true, -1.f, 1.f);
    Summaries sum = make_summaries(*this, pool);
    // Three score levels: pages j % 3 == 1 get q.max = 1 each channel... built from summaries
    // with q = 1: score = sum of maxima. Level of page j: 2 if j % 7 == 3, else 1.
    std::vector<float> vals(static_cast<size_t>(sum.elems), 0.f);
    std::vector<int32_t> table(static_cast<size_t>(heads) * 301);
    for (int32_t h = 0; h < heads; ++h)
      for (int32_t j = 0; j < 301; ++j) {
        const int32_t page = h * 301 + (j * 37) % 301;  // scrambled, within the head's pages
        table[h * 301 + j] = page;
        const float level = (j % 7 == 3 && j < 30) ? 2.f : 1.f;
        for (int32_t c = 0; c < d; ++c) {
          vals[page * sum.desc.page_stride + c] = -level;
          vals[page * sum.desc.page_stride + d + c] = level;
        }
      }
    const auto raw = TypedData{dtype, vals}.raw();
    sum.buf->upload(raw.data(), raw.size());
    std::vector<float> qv(static_cast<size_t>(heads) * d, 1.f);
    const auto q_raw = TypedData{dtype, qv}.raw();
    auto q_buf = buffer(q_raw.size());
    q_buf->upload(q_raw.data(), q_raw.size());
    auto table_buf = buffer(table.size() * 4), lens_buf = buffer(4);
    table_buf->upload(table);
    lens_buf->upload(std::vector<int32_t>{len});
    kv_page_table t{static_cast<const int32_t*>(table_buf->data()), 0, 301, static_cast<const int32_t*>(lens_buf->data())};
    const uint64_t ws_bytes = kv_quest_select_workspace_bytes(s(), 1, heads, p, len);
    auto ws = buffer(ws_bytes);
    auto idx_buf = buffer(heads * top_k * 4), cnt_buf = buffer(heads * 4);
    idx_buf->fill(0xFF);
    ASSERT_EQ(kv_quest_select_async(s(), dtype, q_buf->data(), &pool.desc, &t, &sum.desc, 1, heads, len, top_k,
                                    static_cast<int32_t*>(idx_buf->data()), static_cast<int32_t*>(cnt_buf->data()),
                                    top_k, ws_bytes ? ws->data() : nullptr, ws_bytes),
              KV_STATUS_OK)
        << kv_last_error();
    ASSERT_EQ(kv_stream_synchronize(s()), KV_STATUS_OK) << kv_last_error();
    const auto idx = idx_buf->download_all<int32_t>();
    const auto cnt = cnt_buf->download_all<int32_t>();
    // Level 2 pages: j = 3, 10, 17, 24 (four of them) fill top_k - 1 = 4 exactly.
    for (int32_t h = 0; h < heads; ++h) {
      EXPECT_EQ(cnt[h], top_k);
      EXPECT_EQ(join(std::vector<int32_t>(idx.begin() + h * top_k, idx.begin() + (h + 1) * top_k)), "3,10,17,24,299");
    }
    // All equal: q = 0.
    std::vector<float> q0(static_cast<size_t>(heads) * d, 0.f);
    const auto q0_raw = TypedData{dtype, q0}.raw();
    q_buf->upload(q0_raw.data(), q0_raw.size());
    idx_buf->fill(0xFF);
    ASSERT_EQ(kv_quest_select_async(s(), dtype, q_buf->data(), &pool.desc, &t, &sum.desc, 1, heads, len, top_k,
                                    static_cast<int32_t*>(idx_buf->data()), static_cast<int32_t*>(cnt_buf->data()),
                                    top_k, ws_bytes ? ws->data() : nullptr, ws_bytes),
              KV_STATUS_OK)
        << kv_last_error();
    ASSERT_EQ(kv_stream_synchronize(s()), KV_STATUS_OK) << kv_last_error();
    const auto idx0 = idx_buf->download_all<int32_t>();
    for (int32_t h = 0; h < heads; ++h)
      EXPECT_EQ(join(std::vector<int32_t>(idx0.begin() + h * top_k, idx0.begin() + (h + 1) * top_k)), "0,1,2,3,299");
  }
}

TEST_P(QuestTest, SelectRandomScoresWithinErrorBound) {
  for (kv_dtype dtype : {KV_DTYPE_F32, KV_DTYPE_BF16})
    for (int32_t group : {1, 2, 3, 4, 8, 12}) {
      const int32_t p = 16;
      SelectCase c{dtype, 128, group, 2, 3, p, 16, group == 4, {100 * p + 5, 17 * p, 2}, false};
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " G=" + std::to_string(group) + " on " + where());
      SelectRun r = run_select(*this, rng_, c);
      expect_consistent(c, r);
    }
}

TEST_P(QuestTest, ScoreBoundsEveryKeyOfItsPage) {
  // Summaries computed by the library from random K; the reference score of each page bounds
  // q.k of every query head of the group and every token of the page (exact in double).
  for (kv_dtype dtype : {KV_DTYPE_F32, KV_DTYPE_BF16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)) + " on " + where());
    const int32_t p = 16, d = 128, group = 4, heads = 2;
    SelectCase c{dtype, d, group, heads, 2, p, 8, false, {50 * p, 30 * p + 1}, false};
    Pool pool{};
    std::vector<float> q;
    SelectRun r = run_select(*this, rng_, c, true, &pool, &q);
    expect_consistent(c, r);
    // Rebuild the reference scores against the keys through the table used: scores in r are per
    // logical page; check them against K of the physical page via the summaries' definition.
    // (run_select's pages are a permutation; recompute the bound per physical page instead.)
    const int32_t hq = heads * group;
    int violations = 0;
    for (int32_t pg = 0; pg < pool.pages; ++pg)
      for (int32_t h = 0; h < heads; ++h)
        for (int32_t b = 0; b < c.batch; ++b) {
          const auto sref = ref_summary(pool.k.values, pool.row(pg, h, 0), d, p, d);
          std::vector<float> lo(sref.begin(), sref.begin() + d), hi(sref.begin() + d, sref.end());
          const float* qg = q.data() + (static_cast<int64_t>(b) * hq + h * group) * d;
          const double score = ref_score(qg, group, lo.data(), hi.data(), d, nullptr);
          for (int32_t g = 0; g < group; ++g)
            for (int32_t t = 0; t < p; ++t) {
              double dot = 0;
              for (int32_t ch = 0; ch < d; ++ch) dot += static_cast<double>(qg[g * d + ch]) * pool.k.values[pool.row(pg, h, t) + ch];
              if (dot > score + 1e-9 * std::fabs(score) && ++violations <= 3)
                ADD_FAILURE() << "page " << pg << " head " << h << " token " << t << ": q.k = " << dot << " > score " << score;
            }
        }
    EXPECT_EQ(violations, 0);
  }
}

// ------------------------------------------------------------------ bad input

struct BadInputEnv {
  Pool pool;
  Summaries sum;
  std::unique_ptr<GuardedBuffer> q, table, lens, idx, cnt, ws, pages, valid;
  kv_page_table t{};
  uint64_t ws_bytes = 0;
};

BadInputEnv make_env(QuestTest& f, std::mt19937_64& rng) {
  BadInputEnv e;
  e.pool = make_pool(f, rng, KV_DTYPE_BF16, 8, 16, 2, 64, false, -1.f, 1.f);
  e.sum = make_summaries(f, e.pool);
  e.q = f.buffer(4 * 64 * 2);
  e.q->fill(0);
  e.table = f.buffer(8 * 4);
  e.table->upload(std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  e.lens = f.buffer(4);
  e.lens->upload(std::vector<int32_t>{8 * 16});
  e.t = kv_page_table{static_cast<const int32_t*>(e.table->data()), 8, 0, static_cast<const int32_t*>(e.lens->data())};
  e.idx = f.buffer(2 * 4 * 4);
  e.cnt = f.buffer(2 * 4);
  e.ws_bytes = kv_quest_select_workspace_bytes(f.s(), 1, 2, 16, 8 * 16);
  e.ws = f.buffer(e.ws_bytes);
  e.pages = f.buffer(2 * 4);
  e.pages->upload(std::vector<int32_t>{1, 6});
  e.valid = f.buffer(2 * 4);
  e.valid->upload(std::vector<int32_t>{16, 3});
  return e;
}

kv_status select_call(QuestTest& f, BadInputEnv& e, const kv_paged_kv* kv, const kv_page_table* t,
                      const kv_page_summaries* sums, int32_t batch = 1, int32_t hq = 4, int32_t max_len = 128,
                      int32_t top_k = 4, int32_t out_stride = 4, const void* q = nullptr, bool null_idx = false,
                      uint64_t ws_bytes = UINT64_MAX) {
  return kv_quest_select_async(f.s(), KV_DTYPE_BF16, q ? q : e.q->data(), kv, t, sums, batch, hq, max_len, top_k,
                               null_idx ? nullptr : static_cast<int32_t*>(e.idx->data()),
                               static_cast<int32_t*>(e.cnt->data()), out_stride, e.ws->data(),
                               ws_bytes == UINT64_MAX ? e.ws_bytes : ws_bytes);
}

kv_status summary_call(QuestTest& f, BadInputEnv& e, const kv_paged_kv* kv, const kv_page_summaries* sums,
                       int32_t num = 2, kv_dtype dtype = KV_DTYPE_BF16, bool null_pages = false) {
  return kv_page_summary_update_async(f.s(), dtype, kv, null_pages ? nullptr : static_cast<const int32_t*>(e.pages->data()),
                                      static_cast<const int32_t*>(e.valid->data()), num, sums);
}

#define EXPECT_REJECTS(call, status, text)                                                              \
  do {                                                                                                  \
    kv_clear_last_error();                                                                              \
    EXPECT_EQ((call), (status)) << #call;                                                               \
    EXPECT_NE(std::string(kv_last_error()).find(text), std::string::npos)                               \
        << #call << ": message \"" << kv_last_error() << "\" does not name " << (text);                 \
  } while (0)

TEST_P(QuestTest, BadArgumentsAreNamed) {
  SCOPED_TRACE(where());
  BadInputEnv e = make_env(*this, rng_);
  ASSERT_EQ(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(summary_call(*this, e, &e.pool.desc, &e.sum.desc), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(s()), KV_STATUS_OK) << kv_last_error();
  const auto bad = KV_STATUS_INVALID_ARGUMENT;
  // Summary update.
  EXPECT_REJECTS(kv_page_summary_update_async(nullptr, KV_DTYPE_BF16, &e.pool.desc, nullptr, nullptr, 0, &e.sum.desc), bad,
                 "stream");
  EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &e.sum.desc, 2, static_cast<kv_dtype>(7)), bad, "dtype");
  EXPECT_REJECTS(summary_call(*this, e, nullptr, &e.sum.desc), bad, "kv");
  EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, nullptr), bad, "summaries");
  EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &e.sum.desc, -1), bad, "num_update");
  EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &e.sum.desc, 2, KV_DTYPE_BF16, true), bad, "pages");
  {
    kv_paged_kv k = e.pool.desc;
    k.head_dim = 96;
    EXPECT_REJECTS(summary_call(*this, e, &k, &e.sum.desc), KV_STATUS_UNSUPPORTED, "head_dim");
    k = e.pool.desc;
    k.page_tokens = 0;
    EXPECT_REJECTS(summary_call(*this, e, &k, &e.sum.desc), bad, "page_tokens");
  }
  {
    kv_page_summaries sm = e.sum.desc;
    sm.data = nullptr;
    EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &sm), bad, "summaries.data");
    sm = e.sum.desc;
    sm.head_stride = 64;  // < 2 * head_dim
    EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &sm), bad, "summaries.head_stride");
    sm = e.sum.desc;
    sm.page_stride = 128;  // < 2 heads of 128
    EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &sm), bad, "summaries.page_stride");
    sm = e.sum.desc;
    sm.page_stride += 4;
    EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &sm), bad, "multiples of 8");
    sm = e.sum.desc;
    sm.page_stride = -8;
    EXPECT_REJECTS(summary_call(*this, e, &e.pool.desc, &sm), bad, "summaries.page_stride");
    kv_paged_kv single = e.pool.desc;
    single.head_stride = 0;
    EXPECT_REJECTS(summary_call(*this, e, &single, &e.sum.desc), bad, "summaries.head_stride");
  }
  // Selection.
  EXPECT_REJECTS(select_call(*this, e, nullptr, &e.t, &e.sum.desc), bad, "kv");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, nullptr, &e.sum.desc), bad, "table");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, nullptr), bad, "summaries");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc, -1), bad, "batch");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc, 1, 3), bad, "num_q_heads");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc, 1, 4, -1), bad, "max_kv_len");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc, 1, 4, 128, 0), bad, "top_k");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc, 1, 4, 128, 4, 3), bad, "out_stride");
  EXPECT_REJECTS(kv_quest_select_async(s(), KV_DTYPE_BF16, nullptr, &e.pool.desc, &e.t, &e.sum.desc, 1, 4, 128, 4,
                                       static_cast<int32_t*>(e.idx->data()), static_cast<int32_t*>(e.cnt->data()), 4,
                                       e.ws->data(), e.ws_bytes),
                 bad, "q");
  EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc, 1, 4, 128, 4, 4, nullptr, true), bad,
                 "indices_out");
  {
    kv_page_table t = e.t;
    t.kv_lens = nullptr;
    EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &t, &e.sum.desc), bad, "table.kv_lens");
    t = e.t;
    t.head_stride = 8;  // per-head tables need single-head pages
    EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &t, &e.sum.desc), bad, "table.head_stride");
  }
  if (e.ws_bytes > 0)
    EXPECT_REJECTS(select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc, 1, 4, 128, 4, 4, nullptr, false, e.ws_bytes - 1),
                   bad, "workspace_bytes");
  EXPECT_EQ(kv_quest_select_workspace_bytes(nullptr, 1, 2, 16, 128), 0u);
  EXPECT_EQ(kv_quest_select_workspace_bytes(s(), -1, 2, 16, 128), 0u);
  // Nothing queued by the rejected calls.
  EXPECT_EQ(kv_stream_synchronize(s()), KV_STATUS_OK) << kv_last_error();
}

// Bad indices in stream memory: the CPU fails the call, CUDA the next kv_stream_synchronize.
void expect_index_error(QuestTest& f, kv_status call_status, const char* cpu_text, const char* cuda_text) {
  if (f.backend() == KV_BACKEND_CPU) {
    EXPECT_EQ(call_status, KV_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(kv_last_error()).find(cpu_text), std::string::npos) << kv_last_error();
  } else {
    EXPECT_EQ(call_status, KV_STATUS_OK) << kv_last_error();
    kv_clear_last_error();
    EXPECT_EQ(kv_stream_synchronize(f.s()), KV_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(kv_last_error()).find(cuda_text), std::string::npos) << kv_last_error();
  }
  EXPECT_EQ(kv_stream_synchronize(f.s()), KV_STATUS_OK) << "the error is reported once: " << kv_last_error();
}

TEST_P(QuestTest, BadIndicesFailTheCallOrTheSynchronize) {
  SCOPED_TRACE(where());
  BadInputEnv e = make_env(*this, rng_);
  e.pages->upload(std::vector<int32_t>{1, 8});
  expect_index_error(*this, summary_call(*this, e, &e.pool.desc, &e.sum.desc), "pages[1] = 8", "page table entry");
  e.pages->upload(std::vector<int32_t>{1, -1});
  expect_index_error(*this, summary_call(*this, e, &e.pool.desc, &e.sum.desc), "pages[1] = -1", "page table entry");
  e.pages->upload(std::vector<int32_t>{1, 2});
  e.valid->upload(std::vector<int32_t>{0, 3});
  expect_index_error(*this, summary_call(*this, e, &e.pool.desc, &e.sum.desc), "valid_tokens[0] = 0", "(entry 0, value 0");
  e.valid->upload(std::vector<int32_t>{5, 17});
  expect_index_error(*this, summary_call(*this, e, &e.pool.desc, &e.sum.desc), "valid_tokens[1] = 17",
                     "(entry 1, value 17");
  // Selection: a page id out of range in a scored page and in the newest page; kv_len too long.
  for (int32_t bad_j : {2, 7}) {
    std::vector<int32_t> tbl{0, 1, 2, 3, 4, 5, 6, 7};
    tbl[bad_j] = 99;
    e.table->upload(tbl);
    expect_index_error(*this, select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc), "= 99 is outside",
                       "value 99");
  }
  e.table->upload(std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  e.lens->upload(std::vector<int32_t>{129});
  expect_index_error(*this, select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc), "kv_lens[0] = 129", "value 129");
  e.lens->upload(std::vector<int32_t>{-5});
  expect_index_error(*this, select_call(*this, e, &e.pool.desc, &e.t, &e.sum.desc), "kv_lens[0] = -5", "value -5");
}

std::string target_name(const ::testing::TestParamInfo<Target>& info) { return info.param.name(); }

INSTANTIATE_TEST_SUITE_P(PagedQuest, QuestTest, ::testing::ValuesIn(all_targets()), target_name);

}  // namespace
}  // namespace kvt
