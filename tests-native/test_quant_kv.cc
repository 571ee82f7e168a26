// Quantized KV blocks (kv_quant_block_layout, kv_quant_pack/unpack/decode_async) on every target
// (CPU scalar, CPU AVX2, CUDA; CUDA cases are named *cuda* and skip without a device), over the
// public C ABI only.
//
//  - The block format is decoded here from kvasir.h's description alone (test_decode below),
//    independently of the library's index code, and every check reads blocks through it.
//  - Pack: every dequantized key and value is within half its grid step of the original (the
//    step derived from the group's exact min and max, the fp16 rounding of min and scale
//    included); the boosted channels are the top boost_channels by mean |k| (computed here in
//    double; a near tie within the fp32 summation error may go either way); unpack writes exactly
//    the decoded values; CUDA writes the same bytes as the CPU; a NaN in a group makes its
//    channel (keys) or token (values) dequantize to NaN.
//  - Decode: against a double-precision reference over the dequantized keys and values of the
//    attended groups and the bf16 tokens, with the fp32 bound of reference.h plus, on CUDA, what
//    its fp16 operands add (Q' = q * k_scale and P' = p * v_scale rounded to fp16: 2^-11
//    relative per term). On the CPU also against kv_paged_decode_async over the same blocks
//    unpacked to fp32 pages ("attention over quantized pages equals attention over the pages
//    dequantized", within twice the fp32 bound). Pages of the quantized span are never
//    allocated (their table entries are invalid ids), outputs are poisoned with NaN and must all
//    be written, canaries guard the buffers, mixed sequences (sink only, buffer only, many
//    blocks, lagging packs) share one batch.
//  - Bad arguments and bad indices fail with messages naming them.
// Inputs are fresh random values from a seed logged per test (replay: KVASIR_TEST_SEED).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "reference.h"
#include "test_util.h"

namespace kvt {
namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr int32_t kBadId = 0x7fffffff;
constexpr double kU16 = 1.0 / (1 << 11);  // fp16 unit roundoff

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string sanitize(std::string name) {
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

// --------------------------------------------------------------------------- the documented format

float half_bits_to_float(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  double v;
  if (exp == 31) v = man ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (exp == 0) v = std::ldexp(static_cast<double>(man), -24);
  else v = std::ldexp(1024.0 + man, exp - 25);
  return static_cast<float>(sign ? -v : v);
}

// The spacing of fp16 values around |x| (the ulp), at least the smallest subnormal.
double half_ulp(double x) {
  x = std::fabs(x);
  if (x < std::ldexp(1.0, -14)) return std::ldexp(1.0, -24);
  int e;
  std::frexp(x, &e);  // x in [2^(e-1), 2^e)
  return std::ldexp(1.0, e - 1 - 10);
}

struct TestFormat {
  int32_t G, D, nb;
  int32_t slots() const { return nb == 0 ? 0 : nb <= 16 ? 16 : (nb + 31) / 32 * 32; }
  // Byte offsets as kvasir.h lists the parts (each 16-byte aligned).
  size_t k_low() const { return 0; }
  size_t k_high() const { return k_low() + static_cast<size_t>(G) * D / 4; }
  size_t k_scale() const { return k_high() + static_cast<size_t>(G) * slots() / 4; }
  size_t k_min() const { return k_scale() + 2 * D; }
  size_t boost() const { return k_min() + 2 * D; }
  size_t v_codes() const { return boost() + (slots() + 15) / 16 * 16; }
  size_t v_scale() const { return v_codes() + static_cast<size_t>(G) * D / 4; }
  size_t v_min() const { return v_scale() + 2 * G; }
  size_t bytes() const { return v_min() + 2 * G; }
  kv_quant_format abi() const { return kv_quant_format{G, D, nb, 0}; }
  std::string name() const {
    return "G" + std::to_string(G) + "_D" + std::to_string(D) + "_boost" + std::to_string(nb);
  }
};

// Code (row, col) of an R x C plane in the documented fragment order: m-tiles of 16 rows, 32
// lane units of C/8 bytes each; lane = (row % 8) * 4 + (col % 8) / 2, register (row % 16) / 8 +
// 2 * ((col % 16) / 8), half col % 2; k-steps (16 columns) paired in 32-bit words (bit 16 half +
// 2 ((ks % 2) * 4 + reg)), an odd last k-step a 16-bit unit (bit 8 half + 2 reg).
uint32_t plane_code(const uint8_t* plane, int32_t C, int32_t row, int32_t col) {
  const int32_t lane = (row % 8) * 4 + (col % 8) / 2;
  const int32_t reg = (row % 16) / 8 + 2 * ((col % 16) / 8), half = col % 2, ks = col / 16, ksteps = C / 16;
  const size_t unit = (static_cast<size_t>(row / 16) * 32 + lane) * (C / 8);
  const bool paired = (ksteps % 2 == 0) || ks < ksteps - 1;
  const int32_t bit = paired ? half * 16 + ((ks % 2) * 4 + reg) * 2 : half * 8 + reg * 2;
  const size_t word = unit + static_cast<size_t>(ks / 2) * 4;
  const uint32_t bits = paired ? (plane[word] | plane[word + 1] << 8 | plane[word + 2] << 16 |
                                  static_cast<uint32_t>(plane[word + 3]) << 24)
                               : static_cast<uint32_t>(plane[word] | plane[word + 1] << 8);
  return (bits >> bit) & 3u;
}

uint16_t u16_at(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

// One (block, head) decoded: k, v [G][D] as x = code * scale + min (one fp32 fma, as documented),
// and the parts the CUDA bound needs.
struct Decoded {
  std::vector<float> k, v, k_scale, k_min, v_scale, v_min;
  std::vector<uint32_t> k_code, v_code;  // [G][D]
  std::vector<int32_t> boosted;          // channels, ascending
};

Decoded test_decode(const TestFormat& f, const uint8_t* blk) {
  Decoded out;
  const int32_t G = f.G, D = f.D;
  std::vector<int32_t> slot(D, -1);
  for (int32_t j = 0; j < f.slots(); ++j) {
    const uint8_t ch = blk[f.boost() + j];
    if (ch != 0xFF) {
      slot[ch] = j;
      out.boosted.push_back(ch);
    }
  }
  out.k.resize(static_cast<size_t>(G) * D);
  out.v.resize(out.k.size());
  out.k_code.resize(out.k.size());
  out.v_code.resize(out.k.size());
  for (int32_t d = 0; d < D; ++d) {
    out.k_scale.push_back(half_bits_to_float(u16_at(blk + f.k_scale() + 2 * d)));
    out.k_min.push_back(half_bits_to_float(u16_at(blk + f.k_min() + 2 * d)));
  }
  for (int32_t t = 0; t < G; ++t) {
    out.v_scale.push_back(half_bits_to_float(u16_at(blk + f.v_scale() + 2 * t)));
    out.v_min.push_back(half_bits_to_float(u16_at(blk + f.v_min() + 2 * t)));
  }
  for (int32_t t = 0; t < G; ++t)
    for (int32_t d = 0; d < D; ++d) {
      uint32_t c = plane_code(blk + f.k_low(), D, t, d);
      if (slot[d] >= 0) c |= plane_code(blk + f.k_high(), f.slots(), t, slot[d]) << 2;
      const size_t i = static_cast<size_t>(t) * D + d;
      out.k_code[i] = c;
      out.k[i] = std::fma(static_cast<float>(c), out.k_scale[d], out.k_min[d]);
      const uint32_t cv = plane_code(blk + f.v_codes(), G, d, t);
      out.v_code[i] = cv;
      out.v[i] = std::fma(static_cast<float>(cv), out.v_scale[t], out.v_min[t]);
    }
  return out;
}

std::vector<TestFormat> formats() {
  return {{128, 128, 32}, {128, 128, 16}, {128, 128, 0}, {128, 64, 16}, {128, 64, 8}, {64, 64, 0}, {256, 128, 64}};
}

// ============================================================================ layout

TEST(QuantLayout, MatchesTheDocumentedParts) {
  for (const TestFormat& f : formats()) {
    const kv_quant_format abi = f.abi();
    kv_quant_layout l{};
    ASSERT_EQ(kv_quant_block_layout(&abi, &l), KV_STATUS_OK) << kv_last_error();
    EXPECT_EQ(l.k_low, f.k_low()) << f.name();
    EXPECT_EQ(l.k_high, f.k_high()) << f.name();
    EXPECT_EQ(l.k_scale, f.k_scale()) << f.name();
    EXPECT_EQ(l.k_min, f.k_min()) << f.name();
    EXPECT_EQ(l.boost, f.boost()) << f.name();
    EXPECT_EQ(l.v_codes, f.v_codes()) << f.name();
    EXPECT_EQ(l.v_scale, f.v_scale()) << f.name();
    EXPECT_EQ(l.v_min, f.v_min()) << f.name();
    EXPECT_EQ(l.bytes, f.bytes()) << f.name();
  }
  // Kitty-1/4 at D = 128: 10272 bytes per 128 tokens (80.25 bytes per token and head against
  // bf16's 512: 6.38x smaller, scales, mins and the boost index included).
  const kv_quant_format kitty{128, 128, 32, 0};
  kv_quant_layout l{};
  ASSERT_EQ(kv_quant_block_layout(&kitty, &l), KV_STATUS_OK);
  EXPECT_EQ(l.bytes, 10272u);
}

TEST(QuantLayout, RefusesBadFormatsByField) {
  struct Bad {
    kv_quant_format f;
    const char* field;
  };
  const Bad bad[] = {{{100, 128, 32, 0}, "group_tokens"}, {{512, 128, 32, 0}, "group_tokens"},
                     {{128, 96, 32, 0}, "head_dim"},      {{128, 128, 12, 0}, "boost_channels"},
                     {{128, 128, 136, 0}, "boost_channels"}, {{128, 128, 32, 1}, "reserved"}};
  for (const Bad& b : bad) {
    kv_quant_layout l{};
    EXPECT_NE(kv_quant_block_layout(&b.f, &l), KV_STATUS_OK);
    EXPECT_NE(std::string(kv_last_error()).find(b.field), std::string::npos) << kv_last_error();
  }
  EXPECT_NE(kv_quant_block_layout(nullptr, nullptr), KV_STATUS_OK);
}

// ============================================================================ pack and unpack

// A pool of bf16 (or f32) pages holding `jobs` groups of G tokens, scattered, and a block pool.
struct PackFixture {
  TestFormat fmt;
  kv_dtype dtype = KV_DTYPE_BF16;
  int32_t H = 2, P = 16, jobs = 3;
  std::vector<TypedData> k, v;  // per job [G][H][D]
  kv_paged_kv pool{};
  kv_quant_kv qkv{};
  std::vector<int32_t> src_pages, dst_blocks;
  std::unique_ptr<GuardedBuffer> kb, vb, pages_b, blocks_b, qb;

  void build(kv_stream_t st, kv_backend be, std::mt19937_64& rng, bool inject_nan) {
    const int32_t G = fmt.G, D = fmt.D, per_job = G / P;
    // Keys with per-channel magnitudes spread over two orders (outlier channels: what the boost
    // is for) and offsets; values uniform per token with varying ranges.
    std::normal_distribution<float> n01(0.f, 1.f);
    for (int32_t j = 0; j < jobs; ++j) {
      std::vector<float> kk(static_cast<size_t>(G) * H * D), vv(kk.size());
      for (int32_t h = 0; h < H; ++h)
        for (int32_t d = 0; d < D; ++d) {
          const float mag = std::exp(1.2f * n01(rng)), off = 0.5f * n01(rng);
          for (int32_t t = 0; t < G; ++t) kk[(static_cast<size_t>(t) * H + h) * D + d] = off + mag * n01(rng);
        }
      for (int32_t t = 0; t < G; ++t)
        for (int32_t h = 0; h < H; ++h) {
          const float range = std::exp(n01(rng));
          for (int32_t d = 0; d < D; ++d) vv[(static_cast<size_t>(t) * H + h) * D + d] = range * n01(rng);
        }
      TypedData tk{dtype, kk}, tv{dtype, vv};
      for (float& x : tk.values) x = dtype == KV_DTYPE_BF16 ? from_bf16(to_bf16(x)) : x;
      for (float& x : tv.values) x = dtype == KV_DTYPE_BF16 ? from_bf16(to_bf16(x)) : x;
      k.push_back(tk);
      v.push_back(tv);
    }
    if (inject_nan) {  // job 0: key (t 5, head 0, channel 3); value (t 9, head 1, channel 7)
      k[0].values[(static_cast<size_t>(5) * H + 0) * D + 3] = kNaNf;
      v[0].values[(static_cast<size_t>(9) * H + 1) * D + 7] = kNaNf;
    }
    pool.num_pages = jobs * per_job + 5;
    pool.page_tokens = P;
    pool.num_kv_heads = H;
    pool.head_dim = D;
    pool.page_stride = static_cast<int64_t>(H) * P * D;
    pool.head_stride = static_cast<int64_t>(P) * D;
    pool.token_stride = D;
    std::vector<int32_t> perm(static_cast<size_t>(pool.num_pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    TypedData kp{dtype, std::vector<float>(static_cast<size_t>(pool.num_pages * pool.page_stride), kNaNf)};
    TypedData vp{dtype, kp.values};
    for (int32_t j = 0; j < jobs; ++j)
      for (int32_t i = 0; i < per_job; ++i) {
        const int32_t page = perm[static_cast<size_t>(j) * per_job + i];
        src_pages.push_back(page);
        for (int32_t t = 0; t < P; ++t)
          for (int32_t h = 0; h < H; ++h) {
            const size_t src = (static_cast<size_t>(i * P + t) * H + h) * D;
            const size_t dst = page * pool.page_stride + h * pool.head_stride + t * pool.token_stride;
            std::copy_n(k[j].values.begin() + src, D, kp.values.begin() + dst);
            std::copy_n(v[j].values.begin() + src, D, vp.values.begin() + dst);
          }
      }
    qkv.num_blocks = jobs + 4;
    qkv.num_kv_heads = H;
    qkv.head_stride = static_cast<int64_t>(fmt.bytes());
    qkv.block_stride = qkv.head_stride * H + 32;  // padded: the strides are honoured
    qkv.sink_tokens = 0;
    qkv.format = fmt.abi();
    dst_blocks = {5, 0, 3};
    dst_blocks.resize(static_cast<size_t>(jobs));
    kb = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, kp.raw().size());
    kb->upload(kp.raw());
    vb = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, vp.raw().size());
    vb->upload(vp.raw());
    pages_b = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, src_pages.size() * 4);
    pages_b->upload(src_pages);
    blocks_b = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, dst_blocks.size() * 4);
    blocks_b->upload(dst_blocks);
    qb = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, static_cast<size_t>(qkv.num_blocks * qkv.block_stride));
    qb->fill(0x5A);  // bytes the pack must overwrite
    pool.k_pages = kb->data();
    pool.v_pages = vb->data();
    qkv.blocks = qb->data();
  }

  kv_status pack(kv_stream_t st) {
    return kv_quant_pack_async(st, dtype, &pool, static_cast<const int32_t*>(pages_b->data()),
                               static_cast<const int32_t*>(blocks_b->data()), jobs, &qkv);
  }
  std::vector<uint8_t> block_bytes() const { return qb->download_all<uint8_t>(); }
  const uint8_t* head_of(const std::vector<uint8_t>& all, int32_t job, int32_t h) const {
    return all.data() + dst_blocks[job] * qkv.block_stride + h * qkv.head_stride;
  }
};

struct PackParam {
  size_t fmt;
  kv_dtype dtype;
  Target target;
};

class QuantPackTest : public ::testing::TestWithParam<PackParam> {};

TEST_P(QuantPackTest, RoundTripWithinHalfAStepAndBoostsTheTopChannels) {
  const PackParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const TestFormat fmt = formats()[p.fmt];
  const uint64_t seed = seed_for("quant_pack/" + fmt.name() + "/" + dtype_name(p.dtype) + "/" + p.target.name());
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  StreamHolder stream(p.target);
  kv_stream_t st = stream.get();
  PackFixture fx;
  fx.fmt = fmt;
  fx.dtype = p.dtype;
  fx.build(st, p.target.backend, rng, false);
  ASSERT_EQ(fx.pack(st), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
  ASSERT_TRUE(fx.qb->guards_intact());
  const std::vector<uint8_t> all = fx.block_bytes();
  const int32_t G = fmt.G, D = fmt.D, H = fx.H;
  int failures = 0;
  auto fail = [&](const std::string& msg) {
    if (++failures <= 10) ADD_FAILURE() << msg;
  };
  for (int32_t j = 0; j < fx.jobs; ++j)
    for (int32_t h = 0; h < H; ++h) {
      const uint8_t* blk = fx.head_of(all, j, h);
      const Decoded dec = test_decode(fmt, blk);
      // Boost slots: exactly nb distinct channels, ascending, padding 0xFF.
      if (static_cast<int32_t>(dec.boosted.size()) != fmt.nb)
        fail("job " + std::to_string(j) + " head " + std::to_string(h) + ": " + std::to_string(dec.boosted.size()) +
             " boosted channels, not " + std::to_string(fmt.nb));
      if (!std::is_sorted(dec.boosted.begin(), dec.boosted.end())) fail("boost slots not ascending");
      // The top channels by mean |k|, in double; a near tie within the fp32 sum's error may go
      // either way.
      std::vector<double> mean(D, 0.0), err(D, 0.0);
      for (int32_t d = 0; d < D; ++d) {
        for (int32_t t = 0; t < G; ++t) mean[d] += std::fabs(fx.k[j].values[(static_cast<size_t>(t) * H + h) * D + d]);
        err[d] = 2.0 * G * kU32 * mean[d];
      }
      std::vector<bool> is_boosted(D, false);
      for (int32_t d : dec.boosted) is_boosted[d] = true;
      for (int32_t a = 0; a < D; ++a)
        for (int32_t b = 0; b < D; ++b)
          if (is_boosted[b] && !is_boosted[a] && mean[a] > mean[b] + err[a] + err[b])
            fail("channel " + std::to_string(a) + " (sum |k| " + std::to_string(mean[a]) + ") is not boosted but " +
                 std::to_string(b) + " (" + std::to_string(mean[b]) + ") is");
      // Keys: per channel, within half of the grid step the group's exact range gives.
      for (int32_t d = 0; d < D; ++d) {
        double mn = std::numeric_limits<double>::infinity(), mx = -mn;
        for (int32_t t = 0; t < G; ++t) {
          const double x = fx.k[j].values[(static_cast<size_t>(t) * H + h) * D + d];
          mn = std::min(mn, x);
          mx = std::max(mx, x);
        }
        const double levels = is_boosted[d] ? 15.0 : 3.0;
        // min is rounded down to fp16 (one ulp below at most), the step rounded up (relative
        // 2^-10, plus the fp32 division), then one fp32 fma per value.
        const double step = (mx - mn + half_ulp(mn)) / levels * (1.0 + 2.0 * kU16) + half_ulp((mx - mn) / levels);
        if (dec.k_scale[d] > step)
          fail("channel " + std::to_string(d) + ": scale " + std::to_string(dec.k_scale[d]) + " above the step bound " +
               std::to_string(step));
        for (int32_t t = 0; t < G; ++t) {
          const double x = fx.k[j].values[(static_cast<size_t>(t) * H + h) * D + d];
          const double got = dec.k[static_cast<size_t>(t) * D + d];
          const double bound = step / 2 + 2 * kU32 * (std::fabs(mn) + std::fabs(mx)) + 1e-30;
          if (!(std::fabs(got - x) <= bound))
            fail("key t " + std::to_string(t) + " channel " + std::to_string(d) + ": " + std::to_string(got) +
                 " for " + std::to_string(x) + " (bound " + std::to_string(bound) + ")");
          if (dec.k_code[static_cast<size_t>(t) * D + d] > static_cast<uint32_t>(levels)) fail("key code above its levels");
        }
      }
      // Values: per token.
      for (int32_t t = 0; t < G; ++t) {
        double mn = std::numeric_limits<double>::infinity(), mx = -mn;
        for (int32_t d = 0; d < D; ++d) {
          const double x = fx.v[j].values[(static_cast<size_t>(t) * H + h) * D + d];
          mn = std::min(mn, x);
          mx = std::max(mx, x);
        }
        const double step = (mx - mn + half_ulp(mn)) / 3.0 * (1.0 + 2.0 * kU16) + half_ulp((mx - mn) / 3.0);
        for (int32_t d = 0; d < D; ++d) {
          const double x = fx.v[j].values[(static_cast<size_t>(t) * H + h) * D + d];
          const double got = dec.v[static_cast<size_t>(t) * D + d];
          const double bound = step / 2 + 2 * kU32 * (std::fabs(mn) + std::fabs(mx)) + 1e-30;
          if (!(std::fabs(got - x) <= bound))
            fail("value t " + std::to_string(t) + " channel " + std::to_string(d) + ": " + std::to_string(got) +
                 " for " + std::to_string(x) + " (bound " + std::to_string(bound) + ")");
        }
      }
    }

  // Unpack into fresh f32 pages: exactly the decoded values.
  {
    kv_paged_kv out = fx.pool;
    const int32_t per_job = G / fx.P;
    out.num_pages = fx.jobs * per_job + 2;
    GuardedBuffer ok_b(st, p.target.backend, KV_MEM_DEVICE, static_cast<size_t>(out.num_pages * out.page_stride) * 4);
    GuardedBuffer ov_b(st, p.target.backend, KV_MEM_DEVICE, ok_b.bytes());
    ok_b.fill(0xFF);
    ov_b.fill(0xFF);
    out.k_pages = ok_b.data();
    out.v_pages = ov_b.data();
    std::vector<int32_t> dst_pages(static_cast<size_t>(fx.jobs) * per_job);
    std::iota(dst_pages.begin(), dst_pages.end(), 0);
    std::shuffle(dst_pages.begin(), dst_pages.end(), rng);
    GuardedBuffer dp(st, p.target.backend, KV_MEM_DEVICE, dst_pages.size() * 4);
    dp.upload(dst_pages);
    ASSERT_EQ(kv_quant_unpack_async(st, KV_DTYPE_F32, &fx.qkv, static_cast<const int32_t*>(fx.blocks_b->data()),
                                    static_cast<const int32_t*>(dp.data()), fx.jobs, &out),
              KV_STATUS_OK)
        << kv_last_error();
    ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
    const std::vector<float> kk = ok_b.download_all<float>(), vv = ov_b.download_all<float>();
    ASSERT_TRUE(ok_b.guards_intact() && ov_b.guards_intact());
    for (int32_t j = 0; j < fx.jobs; ++j)
      for (int32_t h = 0; h < H; ++h) {
        const Decoded dec = test_decode(fmt, fx.head_of(all, j, h));
        for (int32_t t = 0; t < G; ++t)
          for (int32_t d = 0; d < D; ++d) {
            const size_t at = dst_pages[static_cast<size_t>(j) * per_job + t / fx.P] * out.page_stride +
                              h * out.head_stride + (t % fx.P) * out.token_stride + d;
            const size_t i = static_cast<size_t>(t) * D + d;
            if (std::memcmp(&kk[at], &dec.k[i], 4) != 0 || std::memcmp(&vv[at], &dec.v[i], 4) != 0) {
              fail("unpack job " + std::to_string(j) + " t " + std::to_string(t) + " d " + std::to_string(d) +
                   ": wrote " + std::to_string(kk[at]) + " / " + std::to_string(vv[at]) + ", decoded " +
                   std::to_string(dec.k[i]) + " / " + std::to_string(dec.v[i]));
            }
          }
      }
  }

  // CUDA: the same bytes as the CPU.
  if (p.target.backend == KV_BACKEND_CUDA) {
    StreamHolder cpu(Target{KV_BACKEND_CPU, KV_CPU_ISA_AVX2});
    PackFixture cf;
    cf.fmt = fmt;
    cf.dtype = p.dtype;
    std::mt19937_64 rng2(seed);
    cf.build(cpu.get(), KV_BACKEND_CPU, rng2, false);
    ASSERT_EQ(cf.pack(cpu.get()), KV_STATUS_OK) << kv_last_error();
    const std::vector<uint8_t> ref = cf.block_bytes();
    for (int32_t j = 0; j < fx.jobs; ++j)
      for (int32_t h = 0; h < H; ++h)
        if (std::memcmp(fx.head_of(all, j, h), cf.head_of(ref, j, h), fmt.bytes()) != 0) {
          size_t first = 0;
          while (fx.head_of(all, j, h)[first] == cf.head_of(ref, j, h)[first]) ++first;
          fail("CUDA pack of job " + std::to_string(j) + " head " + std::to_string(h) + " differs from the CPU's at byte " +
               std::to_string(first));
        }
  }
}

TEST_P(QuantPackTest, NaNPoisonsItsChannelAndToken) {
  const PackParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const TestFormat fmt = formats()[p.fmt];
  std::mt19937_64 rng(seed_for("quant_pack_nan/" + fmt.name() + "/" + p.target.name()));
  StreamHolder stream(p.target);
  PackFixture fx;
  fx.fmt = fmt;
  fx.dtype = p.dtype;
  fx.build(stream.get(), p.target.backend, rng, true);
  ASSERT_EQ(fx.pack(stream.get()), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(stream.get()), KV_STATUS_OK) << kv_last_error();
  const std::vector<uint8_t> all = fx.block_bytes();
  const Decoded h0 = test_decode(fmt, fx.head_of(all, 0, 0)), h1 = test_decode(fmt, fx.head_of(all, 0, 1));
  for (int32_t t = 0; t < fmt.G; ++t) {
    EXPECT_TRUE(std::isnan(h0.k[static_cast<size_t>(t) * fmt.D + 3])) << "key channel 3, token " << t;
    EXPECT_FALSE(std::isnan(h0.k[static_cast<size_t>(t) * fmt.D + 4])) << "key channel 4, token " << t;
  }
  for (int32_t d = 0; d < fmt.D; ++d) {
    EXPECT_TRUE(std::isnan(h1.v[static_cast<size_t>(9) * fmt.D + d])) << "value token 9, channel " << d;
    EXPECT_FALSE(std::isnan(h1.v[static_cast<size_t>(10) * fmt.D + d])) << "value token 10, channel " << d;
  }
}

std::vector<PackParam> pack_params() {
  std::vector<PackParam> out;
  for (size_t f = 0; f < formats().size(); ++f)
    for (kv_dtype dt : {KV_DTYPE_BF16, KV_DTYPE_F32})
      for (const Target& t : all_targets()) out.push_back({f, dt, t});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, QuantPackTest, ::testing::ValuesIn(pack_params()),
                         [](const ::testing::TestParamInfo<PackParam>& pi) {
                           return sanitize(formats()[pi.param.fmt].name() + "_" + dtype_name(pi.param.dtype) +
                                           "_" + pi.param.target.name());
                         });

TEST(QuantPack, BadIndicesFailNamingThem) {
  StreamHolder stream(Target{KV_BACKEND_CPU, KV_CPU_ISA_AVX2});
  std::mt19937_64 rng(1);
  PackFixture fx;
  fx.fmt = {128, 64, 16};
  fx.build(stream.get(), KV_BACKEND_CPU, rng, false);
  std::vector<int32_t> dup = {1, 1, 2};
  fx.blocks_b->upload(dup);
  EXPECT_NE(fx.pack(stream.get()), KV_STATUS_OK);
  EXPECT_NE(std::string(kv_last_error()).find("twice"), std::string::npos) << kv_last_error();
  std::vector<int32_t> out_of_range = {0, 1, 99};
  fx.blocks_b->upload(out_of_range);
  EXPECT_NE(fx.pack(stream.get()), KV_STATUS_OK);
  EXPECT_NE(std::string(kv_last_error()).find("dst_blocks[2]"), std::string::npos) << kv_last_error();
  fx.blocks_b->upload(fx.dst_blocks);
  std::vector<int32_t> pages = fx.src_pages;
  pages[4] = -1;
  fx.pages_b->upload(pages);
  EXPECT_NE(fx.pack(stream.get()), KV_STATUS_OK);
  EXPECT_NE(std::string(kv_last_error()).find("src_pages[4]"), std::string::npos) << kv_last_error();
  // A group that is not whole pages.
  kv_paged_kv odd = fx.pool;
  odd.page_tokens = 48;
  odd.page_stride = static_cast<int64_t>(fx.H) * 48 * fx.fmt.D;
  odd.head_stride = 48 * fx.fmt.D;
  odd.num_pages = 2;
  EXPECT_NE(kv_quant_pack_async(stream.get(), KV_DTYPE_BF16, &odd, static_cast<const int32_t*>(fx.pages_b->data()),
                                static_cast<const int32_t*>(fx.blocks_b->data()), 1, &fx.qkv),
            KV_STATUS_OK);
  EXPECT_NE(std::string(kv_last_error()).find("group_tokens"), std::string::npos) << kv_last_error();
}

// ============================================================================ decode

struct SeqSpec {
  int32_t len, count;  // tokens; quantized groups (may lag behind what fits)
};

enum class Ws { kNone, kFull };

struct DecodeSpec {
  TestFormat fmt;
  int32_t hq, hkv, sink;
  std::vector<SeqSpec> seqs;
  bool select = false;
  Ws ws = Ws::kFull;
  int32_t repeats = 1;
  float scale_mult = 1.f;

  std::string name() const {
    std::ostringstream s;
    s << fmt.name() << "_hq" << hq << "_hkv" << hkv << "_sink" << sink << "_seqs";
    for (const SeqSpec& q : seqs) s << "_" << q.len << "q" << q.count;
    if (select) s << "_select";
    if (ws == Ws::kNone) s << "_wsnone";
    if (repeats > 1) s << "_x" << repeats;
    if (scale_mult != 1.f) s << "_scale" << scale_mult;
    return s.str();
  }
};

std::vector<DecodeSpec> decode_specs() {
  std::vector<DecodeSpec> v;
  const TestFormat kitty{128, 128, 32}, kitty8{128, 128, 16}, kivi{128, 128, 0}, small{128, 64, 16},
      small8{128, 64, 8}, small0{128, 64, 0};
  // Mixed batches: sink only, buffer only (no group yet), many groups, a pack that lags.
  const std::vector<SeqSpec> mixed = {{10, 0}, {32 + 90, 0}, {32 + 128 * 3 + 77, 3}, {0, 0},
                                      {32 + 128 * 2 + 200, 1}, {32 + 128 * 4 + 128, 4}};
  for (const TestFormat& f : {kitty, kitty8, kivi, small, small8, small0})
    for (int32_t g : {4, 8}) v.push_back({f, 2 * g, 2, 32, mixed});
  v.push_back({kitty, 8, 2, 0, {{128 * 5 + 3, 5}, {128, 1}, {7, 0}}});     // KIVI-2 without a sink
  v.push_back({kitty, 2, 2, 32, mixed});                                    // group 1
  v.push_back({kitty, 10, 2, 32, mixed});                                   // group 5
  v.push_back({kitty, 32, 2, 32, {{32 + 128 * 6 + 40, 6}}});                // group 16: two head tiles
  v.push_back({kitty, 32, 8, 32, mixed, true});                             // block selection
  v.push_back({small, 8, 2, 32, mixed, true});
  // Long sequences: split-KV, in one call and three on one workspace (arrival counters reset).
  v.push_back({kitty, 32, 8, 32, {{32 + 128 * 60 + 130, 60}}});
  v.push_back({kitty, 32, 8, 32, {{32 + 128 * 60 + 130, 60}, {300, 1}, {5, 0}}, false, Ws::kFull, 3});
  v.push_back({kitty, 32, 8, 32, {{32 + 128 * 60 + 130, 60}}, false, Ws::kNone});
  v.push_back({small, 8, 2, 32, {{32 + 128 * 100 + 200, 100}, {40, 0}}, true, Ws::kFull, 2});
  v.push_back({kivi, 32, 8, 32, {{32 + 128 * 30 + 255, 30}}, false, Ws::kFull, 1, 6.f});  // peaked softmax
  return v;
}

const std::vector<DecodeSpec>& all_decode_specs() {
  static const std::vector<DecodeSpec> specs = decode_specs();
  return specs;
}

// Sequences with bf16 pages for the tokens outside their quantized span and blocks for the rest
// (packed by the CPU from temporary pages), on the target.
struct DecodeFixture {
  DecodeSpec spec;
  int32_t batch = 0, max_len = 0, P = 16;
  std::vector<int32_t> lens, counts, pages, qblocks, sel_idx, sel_cnt;
  std::vector<TypedData> k, v;              // per sequence [len][hkv][d] bf16 values
  std::vector<std::vector<Decoded>> dec;    // per (sequence, head) x group... [b * H + h][j]
  TypedData q{KV_DTYPE_BF16, {}};
  kv_paged_kv kv{};
  kv_page_table table{};
  kv_quant_kv qkv{};
  kv_quant_table qtable{};
  kv_page_select select{};
  std::unique_ptr<GuardedBuffer> kb, vb, pages_b, lens_b, qblk_b, qpool_b, cnt_b, si_b, sc_b, qb, ob, lb, wsb;
  uint64_t ws_bytes = 0;
  int64_t table_stride = 0, qstride = 0;

  float scale() const { return spec.scale_mult / std::sqrt(static_cast<float>(spec.fmt.D)); }
  int32_t b_start(int32_t b) const { return std::max(std::min(spec.sink, lens[b]), spec.sink + counts[b] * spec.fmt.G); }
  bool in_quant(int32_t b, int32_t t) const { return t >= spec.sink && t < spec.sink + counts[b] * spec.fmt.G; }

  std::vector<int32_t> attended_groups(int32_t b, int32_t h) const {
    std::vector<int32_t> out;
    if (!spec.select) {
      for (int32_t j = 0; j < counts[b]; ++j) out.push_back(j);
    } else {
      const int64_t list = static_cast<int64_t>(b) * spec.hkv + h;
      for (int32_t i = 0; i < sel_cnt[list]; ++i) out.push_back(sel_idx[list * select.stride + i]);
    }
    return out;
  }

  void build(kv_stream_t st, kv_backend be, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int32_t H = spec.hkv, D = spec.fmt.D, G = spec.fmt.G;
    batch = static_cast<int32_t>(spec.seqs.size());
    for (const SeqSpec& s : spec.seqs) {
      lens.push_back(s.len);
      counts.push_back(s.count);
    }
    max_len = *std::max_element(lens.begin(), lens.end());
    std::normal_distribution<float> n01(0.f, 1.f);
    for (int32_t b = 0; b < batch; ++b) {
      std::vector<float> kk(static_cast<size_t>(lens[b]) * H * D), vv(kk.size());
      std::vector<float> mag(static_cast<size_t>(H) * D);
      for (float& m : mag) m = std::exp(0.8f * n01(rng));
      for (size_t i = 0; i < kk.size(); ++i) {
        kk[i] = from_bf16(to_bf16(mag[i % (static_cast<size_t>(H) * D)] * n01(rng)));
        vv[i] = from_bf16(to_bf16(n01(rng)));
      }
      k.push_back({KV_DTYPE_BF16, kk});
      v.push_back({KV_DTYPE_BF16, vv});
    }
    q = random_typed(KV_DTYPE_BF16, static_cast<size_t>(batch) * spec.hq * D, rng, -1.f, 1.f);

    // Blocks: pack each group on the CPU from temporary pages; the target gets the bytes.
    int32_t total_groups = 0;
    for (int32_t c : counts) total_groups += c;
    qkv.num_blocks = total_groups + 3;
    qkv.num_kv_heads = H;
    qkv.head_stride = static_cast<int64_t>(spec.fmt.bytes());
    qkv.block_stride = qkv.head_stride * H;
    qkv.sink_tokens = spec.sink;
    qkv.format = spec.fmt.abi();
    std::vector<int32_t> bperm(static_cast<size_t>(qkv.num_blocks));
    std::iota(bperm.begin(), bperm.end(), 0);
    std::shuffle(bperm.begin(), bperm.end(), rng);
    qstride = 0;
    for (int32_t c : counts) qstride = std::max<int64_t>(qstride, c);
    qstride += 1;
    qblocks.assign(static_cast<size_t>(batch * qstride), kBadId);
    std::vector<uint8_t> qbytes(static_cast<size_t>(qkv.num_blocks * qkv.block_stride), 0xEE);
    {
      StreamHolder cpu(Target{KV_BACKEND_CPU, KV_CPU_ISA_AVX2});
      const int32_t per = G / P;
      int32_t next = 0;
      for (int32_t b = 0; b < batch; ++b) {
        if (counts[b] == 0) continue;
        kv_paged_kv tmp{};
        tmp.num_pages = counts[b] * per;
        tmp.page_tokens = P;
        tmp.num_kv_heads = H;
        tmp.head_dim = D;
        tmp.page_stride = static_cast<int64_t>(H) * P * D;
        tmp.head_stride = static_cast<int64_t>(P) * D;
        tmp.token_stride = D;
        std::vector<uint16_t> kp(static_cast<size_t>(tmp.num_pages * tmp.page_stride)), vp(kp.size());
        for (int32_t t = spec.sink; t < spec.sink + counts[b] * G; ++t) {
          const int32_t page = (t - spec.sink) / P;
          for (int32_t h = 0; h < H; ++h)
            for (int32_t d = 0; d < D; ++d) {
              const size_t dst = page * tmp.page_stride + h * tmp.head_stride + ((t - spec.sink) % P) * D + d;
              kp[dst] = to_bf16(k[b].values[(static_cast<size_t>(t) * H + h) * D + d]);
              vp[dst] = to_bf16(v[b].values[(static_cast<size_t>(t) * H + h) * D + d]);
            }
        }
        tmp.k_pages = kp.data();
        tmp.v_pages = vp.data();
        std::vector<int32_t> src(static_cast<size_t>(tmp.num_pages)), dst(static_cast<size_t>(counts[b]));
        std::iota(src.begin(), src.end(), 0);
        for (int32_t j = 0; j < counts[b]; ++j) {
          dst[j] = bperm[next++];
          qblocks[b * qstride + j] = dst[j];
        }
        kv_quant_kv host = qkv;
        host.blocks = qbytes.data();
        KVT_CHECK(kv_quant_pack_async(cpu.get(), KV_DTYPE_BF16, &tmp, src.data(), dst.data(), counts[b], &host));
      }
    }
    dec.assign(static_cast<size_t>(batch) * H, {});
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t h = 0; h < H; ++h)
        for (int32_t j = 0; j < counts[b]; ++j)
          dec[static_cast<size_t>(b) * H + h].push_back(
              test_decode(spec.fmt, qbytes.data() + qblocks[b * qstride + j] * qkv.block_stride + h * qkv.head_stride));

    // bf16 pages for tokens outside the quantized span only; entries of the span are invalid.
    table_stride = ceil_div(max_len, P) + 1;
    pages.assign(static_cast<size_t>(batch * table_stride), kBadId);
    int64_t needed = 0;
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t j = 0; j < ceil_div(lens[b], P); ++j)
        if (!in_quant(b, j * P)) ++needed;
    kv.num_pages = needed + 2;
    kv.page_tokens = P;
    kv.num_kv_heads = H;
    kv.head_dim = D;
    kv.page_stride = static_cast<int64_t>(H) * P * D;
    kv.head_stride = static_cast<int64_t>(P) * D;
    kv.token_stride = D;
    std::vector<int32_t> perm(static_cast<size_t>(kv.num_pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    TypedData kp{KV_DTYPE_BF16, std::vector<float>(static_cast<size_t>(kv.num_pages * kv.page_stride), kNaNf)};
    TypedData vp{KV_DTYPE_BF16, kp.values};
    int64_t next = 0;
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t j = 0; j < ceil_div(lens[b], P); ++j) {
        if (in_quant(b, j * P)) continue;
        const int32_t page = perm[next++];
        pages[b * table_stride + j] = page;
        for (int32_t t = j * P; t < std::min(lens[b], (j + 1) * P); ++t)
          for (int32_t h = 0; h < H; ++h) {
            const size_t dst = page * kv.page_stride + h * kv.head_stride + (t % P) * D;
            std::copy_n(k[b].values.begin() + (static_cast<size_t>(t) * H + h) * D, D, kp.values.begin() + dst);
            std::copy_n(v[b].values.begin() + (static_cast<size_t>(t) * H + h) * D, D, vp.values.begin() + dst);
          }
      }
    if (spec.select) {
      select.stride = static_cast<int32_t>(qstride + 1);
      sel_idx.assign(static_cast<size_t>(batch) * H * select.stride, -55);
      sel_cnt.assign(static_cast<size_t>(batch) * H, 0);
      for (int32_t b = 0; b < batch; ++b)
        for (int32_t h = 0; h < H; ++h) {
          std::vector<int32_t> all(static_cast<size_t>(counts[b]));
          std::iota(all.begin(), all.end(), 0);
          std::shuffle(all.begin(), all.end(), rng);
          const int32_t n = counts[b] == 0 ? 0 : std::uniform_int_distribution<int32_t>(0, counts[b])(rng);
          const int64_t list = static_cast<int64_t>(b) * H + h;
          sel_cnt[list] = n;
          std::copy_n(all.begin(), n, sel_idx.begin() + list * select.stride);
        }
    }
    auto up = [&](const void* data, size_t bytes) {
      auto buf = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, std::max<size_t>(bytes, 16));
      if (bytes) buf->upload(data, bytes);
      return buf;
    };
    kb = up(kp.raw().data(), kp.raw().size());
    vb = up(vp.raw().data(), vp.raw().size());
    pages_b = up(pages.data(), pages.size() * 4);
    lens_b = up(lens.data(), lens.size() * 4);
    qblk_b = up(qblocks.data(), qblocks.size() * 4);
    cnt_b = up(counts.data(), counts.size() * 4);
    qpool_b = up(qbytes.data(), qbytes.size());
    kv.k_pages = kb->data();
    kv.v_pages = vb->data();
    table.pages = static_cast<const int32_t*>(pages_b->data());
    table.seq_stride = table_stride;
    table.kv_lens = static_cast<const int32_t*>(lens_b->data());
    qkv.blocks = qpool_b->data();
    qtable.blocks = static_cast<const int32_t*>(qblk_b->data());
    qtable.seq_stride = qstride;
    qtable.counts = static_cast<const int32_t*>(cnt_b->data());
    if (spec.select) {
      si_b = up(sel_idx.data(), sel_idx.size() * 4);
      sc_b = up(sel_cnt.data(), sel_cnt.size() * 4);
      select.indices = static_cast<const int32_t*>(si_b->data());
      select.counts = static_cast<const int32_t*>(sc_b->data());
    }
    qb = up(q.raw().data(), q.raw().size());
    const size_t rows = static_cast<size_t>(batch) * spec.hq;
    ob = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, rows * D * 2);
    lb = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, rows * 4);
    ob->fill(0xFF);
    lb->fill(0xFF);
    ws_bytes = spec.ws == Ws::kNone ? 0 : kv_quant_decode_workspace_bytes(st, batch, spec.hq, D, max_len);
    if (ws_bytes) {
      wsb = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, ws_bytes);
      wsb->fill(0xFF);
    }
  }

  kv_status run(kv_stream_t st) {
    return kv_quant_decode_async(st, KV_DTYPE_BF16, qb->data(), &kv, &table, &qkv, &qtable,
                                 spec.select ? &select : nullptr, ob->data(), static_cast<float*>(lb->data()), batch,
                                 spec.hq, max_len, scale(), wsb ? wsb->data() : nullptr, ws_bytes);
  }

  // The double reference over each row's attended keys and values, with the fp32 bound of
  // reference.h and, for CUDA, the fp16 operand terms.
  StateRef reference(bool cuda) const {
    const int32_t H = spec.hkv, D = spec.fmt.D, G = spec.fmt.G, g = spec.hq / H;
    const size_t rows = static_cast<size_t>(batch) * spec.hq;
    StateRef r;
    r.o.assign(rows * D, 0.0);
    r.o_bound.assign(rows * D, 0.0);
    r.lse.assign(rows, -std::numeric_limits<double>::infinity());
    r.lse_bound.assign(rows, 0.0);
    const double scale_d = scale();
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t h = 0; h < H; ++h) {
        // The attended keys and values (fp32 values as the kernels read them) and, per key, the
        // magnitude sums of the fp16 operand terms of the CUDA kernel.
        std::vector<const float*> kr, vr;
        std::vector<double> k_mag_scale, v_mag;  // sum_d |kscale_d code_d| per key; |vscale code| per value (per d)
        std::vector<const Decoded*> src_dec;
        std::vector<int32_t> src_t;
        auto add_bf16 = [&](int32_t t) {
          kr.push_back(k[b].values.data() + (static_cast<size_t>(t) * H + h) * D);
          vr.push_back(v[b].values.data() + (static_cast<size_t>(t) * H + h) * D);
          src_dec.push_back(nullptr);
          src_t.push_back(t);
        };
        for (int32_t t = 0; t < std::min(spec.sink, lens[b]); ++t) add_bf16(t);
        const std::vector<Decoded>& groups = dec[static_cast<size_t>(b) * H + h];
        for (int32_t j : attended_groups(b, h))
          for (int32_t t = 0; t < G; ++t) {
            kr.push_back(groups[j].k.data() + static_cast<size_t>(t) * D);
            vr.push_back(groups[j].v.data() + static_cast<size_t>(t) * D);
            src_dec.push_back(&groups[j]);
            src_t.push_back(t);
          }
        for (int32_t t = b_start(b); t < lens[b]; ++t) add_bf16(t);
        const size_t n = kr.size();
        for (int32_t hh = 0; hh < g; ++hh) {
          const size_t row = static_cast<size_t>(b) * spec.hq + static_cast<size_t>(h) * g + hh;
          if (n == 0) {
            r.lse[row] = -std::numeric_limits<double>::infinity();
            continue;  // the empty state: o = 0, lse = -inf, exactly
          }
          const float* qh = q.values.data() + row * D;
          std::vector<double> s(n), e(n);
          double m = -std::numeric_limits<double>::infinity(), s_min = -m, max_e = 0;
          for (size_t i = 0; i < n; ++i) {
            double dot = 0, abs_dot = 0, fp16_term = 0;
            for (int32_t d = 0; d < D; ++d) {
              dot += static_cast<double>(qh[d]) * kr[i][d];
              abs_dot += std::fabs(static_cast<double>(qh[d]) * kr[i][d]);
              if (cuda && src_dec[i]) {
                const Decoded& dd = *src_dec[i];
                fp16_term += std::fabs(static_cast<double>(qh[d]) * dd.k_scale[d] * dd.k_code[src_t[i] * D + d]) +
                             std::fabs(static_cast<double>(qh[d]) * dd.k_min[d]);
              }
            }
            s[i] = scale_d * dot;
            // fp32 dot of 2D + 32 terms (tensor cores may truncate), the scale, and on CUDA the
            // fp16 rounding of each q * k_scale product (a key's terms are all such products).
            e[i] = ((2 * D + 40) * kU32 + 3 * kU32) * scale_d * abs_dot + (cuda ? (kU16 + 2 * D * kU32) * scale_d * fp16_term : 0);
            m = std::max(m, s[i]);
            s_min = std::min(s_min, s[i]);
            max_e = std::max(max_e, e[i]);
          }
          double sum = 0;
          for (size_t i = 0; i < n; ++i) sum += std::exp(s[i] - m);
          const double range = m - s_min;
          const double E = 2 * max_e + 2 * kU32 * range + 4 * kU32 + (6.0 * n + 8) * kU32 +
                           2 * kU32 * (range + std::log(n + 1.0) + 8);
          for (int32_t d = 0; d < D; ++d) {
            double acc = 0, abs_acc = 0, p16 = 0;
            for (size_t i = 0; i < n; ++i) {
              const double p = std::exp(s[i] - m) / sum;
              acc += p * vr[i][d];
              abs_acc += p * std::fabs(vr[i][d]);
              // CUDA: P' = p * v_scale rounded to fp16 (the code is exact), and P of bf16 tokens
              // split into bf16 hi + lo (2^-16 relative).
              if (cuda)
                p16 += src_dec[i] ? p * std::fabs(static_cast<double>(src_dec[i]->v_scale[src_t[i]]) *
                                                  src_dec[i]->v_code[src_t[i] * D + d]) * (kU16 + 2 * kU32) +
                                        p * std::fabs(static_cast<double>(src_dec[i]->v_min[src_t[i]])) * 8 * kU32
                                  : p * std::fabs(vr[i][d]) * std::ldexp(1.0, -15);
            }
            r.o[row * D + d] = acc;
            r.o_bound[row * D + d] = E * abs_acc + p16 + kUBf16 * std::fabs(acc) + 1e-30;
          }
          r.lse[row] = m + std::log(sum);
          r.lse_bound[row] = E + 4 * kU32 * std::fabs(r.lse[row]);
        }
      }
    return r;
  }
};

struct DecodeParam {
  size_t index;
  Target target;
};

class QuantDecodeTest : public ::testing::TestWithParam<DecodeParam> {};

TEST_P(QuantDecodeTest, MatchesReference) {
  const DecodeParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const DecodeSpec& spec = all_decode_specs()[p.index];
  const uint64_t seed = seed_for("quant_decode/" + spec.name() + "/" + p.target.name());
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));
  StreamHolder stream(p.target);
  kv_stream_t st = stream.get();
  DecodeFixture f;
  f.spec = spec;
  f.build(st, p.target.backend, seed);
  const bool cuda = p.target.backend == KV_BACKEND_CUDA;
  const StateRef ref = f.reference(cuda);
  const size_t rows = static_cast<size_t>(f.batch) * spec.hq;
  std::vector<std::string> failures;
  std::vector<float> o, lse;
  for (int32_t call = 0; call < spec.repeats; ++call) {
    if (call > 0) {
      f.ob->fill(0xFF);
      f.lb->fill(0xFF);
    }
    ASSERT_EQ(f.run(st), KV_STATUS_OK) << kv_last_error();
    ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
    std::vector<unsigned char> raw(rows * spec.fmt.D * 2);
    f.ob->download(raw.data(), raw.size());
    o = TypedData::from_raw(KV_DTYPE_BF16, raw).values;
    lse = f.lb->download_all<float>();
    const std::string tag = spec.repeats > 1 ? "call " + std::to_string(call) + ": " : "";
    if (!f.ob->guards_intact() || !f.lb->guards_intact()) failures.push_back(tag + "write outside an output");
    if (f.wsb && !f.wsb->guards_intact()) failures.push_back(tag + "workspace: write past its end");
    for (size_t i = 0; i < o.size(); ++i)
      if (std::isnan(o[i])) {
        failures.push_back(tag + "o[" + std::to_string(i) + "] not written (NaN)");
        break;
      }
    for (const CompareResult& c : {compare(o, ref.o, ref.o_bound, (tag + "o").c_str()),
                                   compare(lse, ref.lse, ref.lse_bound, (tag + "lse").c_str())})
      if (!c.ok) failures.push_back(c.message);
  }
  // CPU: the same attention as kv_paged_decode_async over the blocks unpacked into fp32 pages
  // (each within the fp32 bound of its reference, so within twice the bound of each other).
  if (!cuda && !spec.select) {
    const int32_t H = spec.hkv, D = spec.fmt.D, P = f.P, G = spec.fmt.G;
    kv_paged_kv fk = f.kv;
    fk.num_pages = static_cast<int64_t>(f.batch) * ceil_div(f.max_len, P) + 1;
    std::vector<float> kp(static_cast<size_t>(fk.num_pages * fk.page_stride), kNaNf), vp(kp.size(), kNaNf);
    std::vector<int32_t> tab(static_cast<size_t>(f.batch * f.table_stride), kBadId);
    int32_t next = 0;
    for (int32_t b = 0; b < f.batch; ++b)
      for (int32_t j = 0; j < ceil_div(f.lens[b], P); ++j) {
        const int32_t page = next++;
        tab[b * f.table_stride + j] = page;
        for (int32_t t = j * P; t < std::min(f.lens[b], (j + 1) * P); ++t)
          for (int32_t h = 0; h < H; ++h) {
            const float* kr;
            const float* vr;
            if (f.in_quant(b, t)) {
              const Decoded& dd = f.dec[static_cast<size_t>(b) * H + h][(t - spec.sink) / G];
              kr = dd.k.data() + static_cast<size_t>((t - spec.sink) % G) * D;
              vr = dd.v.data() + static_cast<size_t>((t - spec.sink) % G) * D;
            } else {
              kr = f.k[b].values.data() + (static_cast<size_t>(t) * H + h) * D;
              vr = f.v[b].values.data() + (static_cast<size_t>(t) * H + h) * D;
            }
            const size_t dst = page * fk.page_stride + h * fk.head_stride + (t % P) * D;
            std::copy_n(kr, D, kp.begin() + dst);
            std::copy_n(vr, D, vp.begin() + dst);
          }
      }
    std::vector<float> qf = f.q.values, o32(rows * D), l32(rows);
    fk.k_pages = kp.data();
    fk.v_pages = vp.data();
    kv_page_table t2 = f.table;
    t2.pages = tab.data();
    t2.kv_lens = f.lens.data();
    ASSERT_EQ(kv_paged_decode_async(st, KV_DTYPE_F32, qf.data(), &fk, &t2, nullptr, o32.data(), l32.data(), f.batch,
                                    spec.hq, f.max_len, f.scale(), nullptr, 0),
              KV_STATUS_OK)
        << kv_last_error();
    std::vector<double> ob2(ref.o_bound), lb2(ref.lse_bound), o_ref(o32.begin(), o32.end()), l_ref(l32.begin(), l32.end());
    for (size_t i = 0; i < ob2.size(); ++i) ob2[i] = 2 * ob2[i];
    for (size_t i = 0; i < lb2.size(); ++i) lb2[i] = 2 * lb2[i];
    for (const CompareResult& c : {compare(o, o_ref, ob2, "o vs paged decode over unpacked pages"),
                                   compare(lse, l_ref, lb2, "lse vs paged decode over unpacked pages")})
      if (!c.ok) failures.push_back(c.message);
  }
  for (const auto& msg : failures) ADD_FAILURE() << spec.name() << " on " << p.target.name() << ": " << msg;
}

std::vector<DecodeParam> decode_params() {
  std::vector<DecodeParam> out;
  for (size_t i = 0; i < all_decode_specs().size(); ++i)
    for (const Target& t : all_targets()) out.push_back({i, t});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, QuantDecodeTest, ::testing::ValuesIn(decode_params()),
                         [](const ::testing::TestParamInfo<DecodeParam>& pi) {
                           return sanitize(all_decode_specs()[pi.param.index].name() + "_" +
                                           pi.param.target.name());
                         });

class QuantDecodeErrorsTest : public ::testing::TestWithParam<Target> {};

TEST_P(QuantDecodeErrorsTest, BadIndicesFailTheCall) {
  const Target& t = GetParam();
  const std::string why = unavailable_reason(t);
  if (!why.empty()) GTEST_SKIP() << why;
  StreamHolder stream(t);
  kv_stream_t st = stream.get();
  DecodeFixture f;
  f.spec = {{128, 128, 32}, 8, 2, 32, {{32 + 128 * 2 + 10, 2}, {50, 0}}};
  f.build(st, t.backend, 7);
  ASSERT_EQ(f.run(st), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
  auto expect_failure = [&](const char* what) {
    const kv_status s = f.run(st);
    const kv_status s2 = s == KV_STATUS_OK ? kv_stream_synchronize(st) : s;
    EXPECT_NE(s2, KV_STATUS_OK) << what;
    return std::string(kv_last_error());
  };
  {  // a block id out of range
    std::vector<int32_t> bad = f.qblocks;
    bad[1] = static_cast<int32_t>(f.qkv.num_blocks);
    f.qblk_b->upload(bad);
    const std::string msg = expect_failure("block id");
    EXPECT_NE(msg.find("block"), std::string::npos) << msg;
    f.qblk_b->upload(f.qblocks);
  }
  {  // more groups than the sequence holds
    std::vector<int32_t> bad = f.counts;
    bad[1] = 1;  // 50 tokens: no room for a group after the sink
    f.cnt_b->upload(bad);
    const std::string msg = expect_failure("count");
    EXPECT_NE(msg.find("counts"), std::string::npos) << msg;
    f.cnt_b->upload(f.counts);
  }
  {  // a bf16 page id out of range (the sink page of sequence 0)
    std::vector<int32_t> bad = f.pages;
    bad[0] = -3;
    f.pages_b->upload(bad);
    const std::string msg = expect_failure("page id");
    EXPECT_NE(msg.find("page"), std::string::npos) << msg;
    f.pages_b->upload(f.pages);
  }
  // Host-visible argument errors name the field.
  kv_quant_kv bad = f.qkv;
  bad.head_stride = 100;
  EXPECT_NE(kv_quant_decode_async(st, KV_DTYPE_BF16, f.qb->data(), &f.kv, &f.table, &bad, &f.qtable, nullptr,
                                  f.ob->data(), nullptr, f.batch, f.spec.hq, f.max_len, f.scale(), nullptr, 0),
            KV_STATUS_OK);
  EXPECT_NE(std::string(kv_last_error()).find("head_stride"), std::string::npos) << kv_last_error();
  bad = f.qkv;
  bad.sink_tokens = 8;  // not whole pages
  EXPECT_NE(kv_quant_decode_async(st, KV_DTYPE_BF16, f.qb->data(), &f.kv, &f.table, &bad, &f.qtable, nullptr,
                                  f.ob->data(), nullptr, f.batch, f.spec.hq, f.max_len, f.scale(), nullptr, 0),
            KV_STATUS_OK);
  EXPECT_NE(std::string(kv_last_error()).find("sink_tokens"), std::string::npos) << kv_last_error();
}

INSTANTIATE_TEST_SUITE_P(Targets, QuantDecodeErrorsTest, ::testing::ValuesIn(all_targets()),
                         [](const ::testing::TestParamInfo<Target>& pi) { return sanitize(pi.param.name()); });

}  // namespace
}  // namespace kvt
