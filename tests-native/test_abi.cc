// The C ABI's contract: versions, status and error reporting, devices, memory tiers and
// their counters, streams and events, copies, argument validation of every operation, and
// the algebra of the state merge (associative, commutative, split attention = whole).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "reference.h"
#include "test_util.h"

namespace kvt {
namespace {

std::string last_error() { return kv_last_error(); }

// ------------------------------------------------------------------ version, status, errors

TEST(Abi, VersionMatchesHeader) {
  EXPECT_EQ(kv_abi_version(), KV_ABI_VERSION);
  EXPECT_NE(std::string(kv_build_info()).find("kvasir"), std::string::npos);
}

TEST(Abi, StatusNamesAreDistinct) {
  std::set<std::string> names;
  for (int s = KV_STATUS_OK; s <= KV_STATUS_INTERNAL; ++s) names.insert(kv_status_to_string(static_cast<kv_status>(s)));
  EXPECT_EQ(names.size(), static_cast<size_t>(KV_STATUS_INTERNAL + 1));
  EXPECT_STREQ(kv_status_to_string(static_cast<kv_status>(999)), "KV_STATUS_UNKNOWN");
}

TEST(Abi, LastErrorNamesCallAndArgumentAndIsThreadLocal) {
  kv_clear_last_error();
  kv_buffer_t b = nullptr;
  ASSERT_EQ(kv_buffer_init(KV_BACKEND_CPU, 0, KV_MEM_HOST, 0, &b), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(b, nullptr);
  const std::string msg = last_error();
  EXPECT_NE(msg.find("kv_buffer_init"), std::string::npos) << msg;
  EXPECT_NE(msg.find("size_bytes"), std::string::npos) << msg;
  std::string other;
  std::thread([&] { other = kv_last_error(); }).join();
  EXPECT_EQ(other, "");
  kv_clear_last_error();
  EXPECT_EQ(last_error(), "");
}

TEST(Abi, FreeFunctionsAcceptNull) {
  kv_buffer_free(nullptr);
  kv_stream_free(nullptr);
  kv_event_free(nullptr);
  EXPECT_EQ(kv_buffer_data(nullptr), nullptr);
  EXPECT_EQ(kv_buffer_size_bytes(nullptr), 0u);
}

// ------------------------------------------------------------------ devices

TEST(Devices, CpuIsAlwaysThere) {
  EXPECT_EQ(kv_backend_compiled(KV_BACKEND_CPU), 1);
  int32_t n = 0;
  ASSERT_EQ(kv_device_count(KV_BACKEND_CPU, &n), KV_STATUS_OK);
  EXPECT_EQ(n, 1);
  kv_device_props p;
  std::memset(&p, 0x7f, sizeof p);
  ASSERT_EQ(kv_device_get_props(KV_BACKEND_CPU, 0, &p), KV_STATUS_OK) << last_error();
  EXPECT_GT(std::strlen(p.name), 0u);
  EXPECT_LT(std::strlen(p.name), sizeof p.name);
  EXPECT_GT(p.total_memory_bytes, 0u);
  EXPECT_GE(p.compute_units, 1);
  EXPECT_EQ(p.backend, KV_BACKEND_CPU);
  EXPECT_EQ(kv_device_get_props(KV_BACKEND_CPU, 1, &p), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kv_device_count(static_cast<kv_backend>(7), &n), KV_STATUS_INVALID_ARGUMENT);
}

TEST(Devices, CudaReportsDevicesOrWhyNot) {
  int32_t n = -1;
  kv_status s = kv_device_count(KV_BACKEND_CUDA, &n);
  if (s == KV_STATUS_OK) {
    ASSERT_GT(n, 0);
    kv_device_props p;
    ASSERT_EQ(kv_device_get_props(KV_BACKEND_CUDA, 0, &p), KV_STATUS_OK) << last_error();
    EXPECT_GE(p.compute_major, 7);
    EXPECT_GT(p.total_memory_bytes, 0u);
    EXPECT_EQ(kv_device_get_props(KV_BACKEND_CUDA, n, &p), KV_STATUS_NO_DEVICE);
  } else {
    EXPECT_EQ(s, KV_STATUS_NO_DEVICE);
    EXPECT_EQ(n, 0);
    EXPECT_FALSE(last_error().empty());
  }
}

TEST(Devices, CpuIsaCapCanBeLoweredAndRestored) {
  const kv_cpu_isa best = kv_cpu_isa_active();
  ASSERT_EQ(kv_cpu_isa_set_max(KV_CPU_ISA_SCALAR), KV_STATUS_OK);
  EXPECT_EQ(kv_cpu_isa_active(), KV_CPU_ISA_SCALAR);
  ASSERT_EQ(kv_cpu_isa_set_max(best), KV_STATUS_OK);
  EXPECT_EQ(kv_cpu_isa_active(), best);
  EXPECT_EQ(kv_cpu_isa_set_max(static_cast<kv_cpu_isa>(9)), KV_STATUS_INVALID_ARGUMENT);
}

// ------------------------------------------------------------------ per-backend fixture

class BackendTest : public ::testing::TestWithParam<kv_backend> {
 protected:
  void SetUp() override {
    const std::string why = unavailable_reason({GetParam(), KV_CPU_ISA_AVX2});
    if (!why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(kv_stream_init(GetParam(), 0, &stream_), KV_STATUS_OK) << last_error();
  }
  void TearDown() override { kv_stream_free(stream_); }
  kv_stream_t stream_ = nullptr;
};

struct Live {
  int64_t count[KV_MEM_TIER_COUNT], bytes[KV_MEM_TIER_COUNT];
  static Live now() {
    Live l;
    for (int t = 0; t < KV_MEM_TIER_COUNT; ++t)
      EXPECT_EQ(kv_mem_live(static_cast<kv_mem_tier>(t), &l.count[t], &l.bytes[t]), KV_STATUS_OK);
    return l;
  }
};

TEST_P(BackendTest, TierCountersTrackEveryAllocationAndReturnToStart) {
  const Live before = Live::now();
  for (int round = 0; round < 500; ++round) {
    kv_buffer_t bufs[KV_MEM_TIER_COUNT];
    for (int t = 0; t < KV_MEM_TIER_COUNT; ++t) {
      ASSERT_EQ(kv_buffer_init(GetParam(), 0, static_cast<kv_mem_tier>(t), 1000 + t, &bufs[t]), KV_STATUS_OK)
          << last_error();
      EXPECT_EQ(kv_buffer_size_bytes(bufs[t]), 1000u + t);
      EXPECT_EQ(kv_buffer_tier(bufs[t]), t);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(kv_buffer_data(bufs[t])) % 256, 0u);
    }
    if (round == 0) {
      const Live during = Live::now();
      for (int t = 0; t < KV_MEM_TIER_COUNT; ++t) {
        EXPECT_EQ(during.count[t], before.count[t] + 1);
        EXPECT_EQ(during.bytes[t], before.bytes[t] + 1000 + t);
      }
    }
    for (auto* b : bufs) kv_buffer_free(b);
  }
  const Live after = Live::now();
  for (int t = 0; t < KV_MEM_TIER_COUNT; ++t) {
    EXPECT_EQ(after.count[t], before.count[t]);
    EXPECT_EQ(after.bytes[t], before.bytes[t]);
  }
}

TEST_P(BackendTest, BadAllocationsFailCleanly) {
  const Live before = Live::now();
  kv_buffer_t b = nullptr;
  EXPECT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_DEVICE, uint64_t{1} << 60, &b), KV_STATUS_OUT_OF_MEMORY);
  EXPECT_EQ(b, nullptr);
  EXPECT_NE(last_error().find("could not allocate"), std::string::npos) << last_error();
  EXPECT_EQ(kv_buffer_init(GetParam(), 0, static_cast<kv_mem_tier>(5), 64, &b), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_HOST, 64, nullptr), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(kv_buffer_init(GetParam(), 42, KV_MEM_DEVICE, 64, &b), KV_STATUS_OK);
  const Live after = Live::now();
  for (int t = 0; t < KV_MEM_TIER_COUNT; ++t) EXPECT_EQ(after.count[t], before.count[t]);
}

TEST_P(BackendTest, CopiesRoundTripThroughEveryTier) {
  const uint64_t n = 1 << 20;
  std::vector<unsigned char> data(n), back(n, 0);
  std::mt19937_64 rng(seed_for("round_trip"));
  for (auto& x : data) x = static_cast<unsigned char>(rng());
  kv_buffer_t dev, pinned, host;
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_DEVICE, n, &dev), KV_STATUS_OK);
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_PINNED_HOST, n, &pinned), KV_STATUS_OK);
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_HOST, n, &host), KV_STATUS_OK);
  std::memcpy(kv_buffer_data(host), data.data(), n);
  ASSERT_EQ(kv_memcpy_async(stream_, kv_buffer_data(dev), kv_buffer_data(host), n), KV_STATUS_OK) << last_error();
  ASSERT_EQ(kv_memcpy_async(stream_, kv_buffer_data(pinned), kv_buffer_data(dev), n), KV_STATUS_OK) << last_error();
  ASSERT_EQ(kv_memset_async(stream_, kv_buffer_data(dev), 0x3c, n), KV_STATUS_OK) << last_error();
  ASSERT_EQ(kv_memcpy_async(stream_, back.data(), kv_buffer_data(pinned), n), KV_STATUS_OK) << last_error();
  ASSERT_EQ(kv_stream_synchronize(stream_), KV_STATUS_OK) << last_error();
  EXPECT_EQ(back, data);
  ASSERT_EQ(kv_memcpy_async(stream_, back.data(), kv_buffer_data(dev), n), KV_STATUS_OK);
  ASSERT_EQ(kv_stream_synchronize(stream_), KV_STATUS_OK);
  EXPECT_EQ(back, std::vector<unsigned char>(n, 0x3c));
  EXPECT_EQ(kv_memset_async(stream_, kv_buffer_data(dev), 256, n), KV_STATUS_INVALID_ARGUMENT);
  kv_buffer_free(dev);
  kv_buffer_free(pinned);
  kv_buffer_free(host);
}

TEST_P(BackendTest, EventsTimeAndOrderWork) {
  kv_event_t a = nullptr, b = nullptr;
  ASSERT_EQ(kv_event_init(stream_, &a), KV_STATUS_OK);
  ASSERT_EQ(kv_event_init(stream_, &b), KV_STATUS_OK);
  float ms = -1.f;
  EXPECT_EQ(kv_event_elapsed_ms(a, b, &ms), KV_STATUS_INVALID_ARGUMENT);  // not recorded yet
  EXPECT_EQ(kv_event_synchronize(a), KV_STATUS_INVALID_ARGUMENT);
  kv_buffer_t buf;
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_DEVICE, 64 << 20, &buf), KV_STATUS_OK);
  ASSERT_EQ(kv_event_record(a, stream_), KV_STATUS_OK);
  ASSERT_EQ(kv_memset_async(stream_, kv_buffer_data(buf), 1, 64 << 20), KV_STATUS_OK);
  ASSERT_EQ(kv_event_record(b, stream_), KV_STATUS_OK);
  ASSERT_EQ(kv_stream_wait_event(stream_, b), KV_STATUS_OK);
  ASSERT_EQ(kv_event_synchronize(b), KV_STATUS_OK);
  ASSERT_EQ(kv_event_elapsed_ms(a, b, &ms), KV_STATUS_OK) << last_error();
  EXPECT_GE(ms, 0.f);
  EXPECT_EQ(kv_event_record(nullptr, stream_), KV_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(kv_event_record(a, nullptr), KV_STATUS_INVALID_ARGUMENT);
  kv_buffer_free(buf);
  kv_event_free(a);
  kv_event_free(b);
}

TEST_P(BackendTest, StreamsAndEventsAreCounted) {
  const Live before = Live::now();
  for (int i = 0; i < 200; ++i) {
    kv_stream_t s;
    kv_event_t e;
    ASSERT_EQ(kv_stream_init(GetParam(), 0, &s), KV_STATUS_OK);
    ASSERT_EQ(kv_event_init(s, &e), KV_STATUS_OK);
    kv_event_free(e);
    kv_stream_free(s);
  }
  const Live after = Live::now();
  for (int t = 0; t < KV_MEM_TIER_COUNT; ++t) EXPECT_EQ(after.count[t], before.count[t]);
}

TEST_P(BackendTest, PageIndexOutOfRangeIsReportedAndCopiesNothingThere) {
  const uint64_t page = 256;
  kv_buffer_t src, dst, idx;
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_DEVICE, page * 10, &src), KV_STATUS_OK);
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_DEVICE, page * 4, &dst), KV_STATUS_OK);
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_DEVICE, 4 * sizeof(int64_t), &idx), KV_STATUS_OK);
  const int64_t bad[4] = {1, 2, 99, 3};
  ASSERT_EQ(kv_memcpy_async(stream_, kv_buffer_data(idx), bad, sizeof bad), KV_STATUS_OK);
  ASSERT_EQ(kv_memset_async(stream_, kv_buffer_data(dst), 0, page * 4), KV_STATUS_OK);
  ASSERT_EQ(kv_memset_async(stream_, kv_buffer_data(src), 7, page * 10), KV_STATUS_OK);
  ASSERT_EQ(kv_stream_synchronize(stream_), KV_STATUS_OK);
  kv_status launch = kv_page_copy_async(stream_, kv_buffer_data(dst), 4, kv_buffer_data(src), 10, page,
                                        static_cast<const int64_t*>(kv_buffer_data(idx)), nullptr, 4);
  kv_status sync = kv_stream_synchronize(stream_);
  // The CPU checks before copying; CUDA reads the indices on the device and reports at sync.
  const kv_status reported = GetParam() == KV_BACKEND_CPU ? launch : sync;
  EXPECT_EQ(reported, KV_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("src_pages[2] = 99"), std::string::npos) << last_error();
  std::vector<unsigned char> got(page * 4);
  ASSERT_EQ(kv_memcpy_async(stream_, got.data(), kv_buffer_data(dst), got.size()), KV_STATUS_OK);
  ASSERT_EQ(kv_stream_synchronize(stream_), KV_STATUS_OK) << "the error must be reported once";
  for (uint64_t i = 2 * page; i < 3 * page; ++i) ASSERT_EQ(got[i], 0) << "byte " << i << " of the bad entry's page";
  kv_buffer_free(src);
  kv_buffer_free(dst);
  kv_buffer_free(idx);
}

TEST_P(BackendTest, OperationsRejectBadArgumentsByName) {
  kv_buffer_t buf;
  ASSERT_EQ(kv_buffer_init(GetParam(), 0, KV_MEM_DEVICE, 1 << 20, &buf), KV_STATUS_OK);
  void* p = kv_buffer_data(buf);
  float* f = static_cast<float*>(p);
  auto expect = [&](kv_status got, kv_status want, const char* needle) {
    EXPECT_EQ(got, want) << kv_status_to_string(got);
    EXPECT_NE(last_error().find(needle), std::string::npos) << "message: " << last_error() << "; wanted: " << needle;
  };
  expect(kv_merge_state_async(nullptr, KV_DTYPE_F32, p, f, p, f, p, f, 4, 8), KV_STATUS_INVALID_ARGUMENT, "stream is NULL");
  expect(kv_merge_state_async(stream_, KV_DTYPE_F32, nullptr, f, p, f, p, f, 4, 8), KV_STATUS_INVALID_ARGUMENT, "o_a is NULL");
  expect(kv_merge_state_async(stream_, static_cast<kv_dtype>(3), p, f, p, f, p, f, 4, 8), KV_STATUS_INVALID_ARGUMENT, "dtype=3");
  expect(kv_merge_state_async(stream_, KV_DTYPE_F32, p, f, p, f, p, f, -1, 8), KV_STATUS_INVALID_ARGUMENT, "rows=-1");
  expect(kv_merge_state_async(stream_, KV_DTYPE_F32, p, f, p, f, p, f, 4, 0), KV_STATUS_INVALID_ARGUMENT, "head_dim=0");
  expect(kv_merge_states_async(stream_, KV_DTYPE_F32, p, f, 0, p, f, 4, 8), KV_STATUS_INVALID_ARGUMENT, "num_states=0");
  expect(kv_merge_state_inplace_async(stream_, KV_DTYPE_F32, p, nullptr, p, f, 4, 8), KV_STATUS_INVALID_ARGUMENT, "lse_a is NULL");
  expect(kv_attention_decode_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 8, 2, 96, 16, 0.1f, nullptr, 0),
         KV_STATUS_UNSUPPORTED, "head_dim=96");
  expect(kv_attention_decode_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 6, 4, 64, 16, 0.1f, nullptr, 0),
         KV_STATUS_INVALID_ARGUMENT, "num_q_heads=6");
  expect(kv_attention_decode_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 8, 2, 64, 16, 0.f, nullptr, 0),
         KV_STATUS_INVALID_ARGUMENT, "sm_scale");
  expect(kv_attention_decode_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 8, 2, 64, 16,
                                   std::numeric_limits<float>::quiet_NaN(), nullptr, 0),
         KV_STATUS_INVALID_ARGUMENT, "sm_scale");
  expect(kv_attention_decode_async(stream_, KV_DTYPE_BF16, p, nullptr, p, p, f, 1, 8, 2, 64, 16, 0.1f, nullptr, 0),
         KV_STATUS_INVALID_ARGUMENT, "k is NULL");
  expect(kv_attention_decode_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 8, 2, 64, -3, 0.1f, nullptr, 0),
         KV_STATUS_INVALID_ARGUMENT, "kv_len=-3");
  expect(kv_attention_prefill_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 16, 16, 8, 2, 96, 0.1f),
         KV_STATUS_UNSUPPORTED, "head_dim=96");
  expect(kv_attention_prefill_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 16, 8, 8, 2, 64, 0.1f),
         KV_STATUS_INVALID_ARGUMENT, "kv_len=8 must be >= q_len=16");
  expect(kv_attention_prefill_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, -1, 8, 8, 2, 64, 0.1f),
         KV_STATUS_INVALID_ARGUMENT, "q_len=-1");
  expect(kv_attention_prefill_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 16, 16, 6, 4, 64, 0.1f),
         KV_STATUS_INVALID_ARGUMENT, "num_q_heads=6");
  expect(kv_attention_prefill_async(stream_, KV_DTYPE_BF16, p, p, p, p, f, 1, 16, 16, 8, 2, 64, -1.f),
         KV_STATUS_INVALID_ARGUMENT, "sm_scale");
  expect(kv_attention_prefill_async(stream_, KV_DTYPE_F32, p, p, nullptr, p, f, 1, 16, 16, 8, 2, 64, 0.1f),
         KV_STATUS_INVALID_ARGUMENT, "v is NULL");
  expect(kv_attention_prefill_async(stream_, static_cast<kv_dtype>(2), p, p, p, p, f, 1, 16, 16, 8, 2, 64, 0.1f),
         KV_STATUS_INVALID_ARGUMENT, "dtype=2");
  // q_len = 0 is a no-op before any pointer is looked at.
  EXPECT_EQ(kv_attention_prefill_async(stream_, KV_DTYPE_BF16, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 0, 5, 8,
                                       2, 64, 0.1f),
            KV_STATUS_OK);
  expect(kv_page_copy_async(stream_, p, 4, p, 4, 0, nullptr, nullptr, 1), KV_STATUS_INVALID_ARGUMENT, "page_bytes");
  expect(kv_page_copy_async(stream_, p, 2, p, 8, 64, nullptr, nullptr, 3), KV_STATUS_INVALID_ARGUMENT, "dst_capacity_pages=2");
  expect(kv_roofline_probe(stream_, 100, 1, nullptr), KV_STATUS_INVALID_ARGUMENT, "out is NULL");
  if (GetParam() == KV_BACKEND_CUDA) {
    // Pageable host memory cannot be read by a kernel: named, not a crash.
    std::vector<float> host(1024);
    expect(kv_merge_state_async(stream_, KV_DTYPE_F32, host.data(), f, p, f, p, f, 4, 8), KV_STATUS_INVALID_ARGUMENT,
           "o_a points to pageable host memory");
    // The tensor-core prefill copies rows in 16-byte pieces.
    char* bytes = static_cast<char*>(p);
    expect(kv_attention_prefill_async(stream_, KV_DTYPE_BF16, bytes + 2, p, p, p, f, 1, 4, 4, 2, 1, 64, 0.1f),
           KV_STATUS_INVALID_ARGUMENT, "16-byte aligned");
  }
  kv_buffer_free(buf);
}

// ------------------------------------------------------------------ merge algebra

// Runs one two-state merge on the stream over host vectors (fp32).
void merge2(kv_stream_t s, kv_backend be, int64_t rows, int32_t d, const std::vector<float>& oa,
            const std::vector<float>& la, const std::vector<float>& ob, const std::vector<float>& lb,
            std::vector<float>& o, std::vector<float>& l) {
  GuardedBuffer boa(s, be, KV_MEM_DEVICE, oa.size() * 4), bla(s, be, KV_MEM_DEVICE, la.size() * 4),
      bob(s, be, KV_MEM_DEVICE, ob.size() * 4), blb(s, be, KV_MEM_DEVICE, lb.size() * 4),
      bo(s, be, KV_MEM_DEVICE, oa.size() * 4), bl(s, be, KV_MEM_DEVICE, la.size() * 4);
  boa.upload(oa);
  bla.upload(la);
  bob.upload(ob);
  blb.upload(lb);
  KVT_CHECK(kv_merge_state_async(s, KV_DTYPE_F32, boa.data(), static_cast<float*>(bla.data()), bob.data(),
                                 static_cast<float*>(blb.data()), bo.data(), static_cast<float*>(bl.data()), rows, d));
  o = bo.download_all<float>();
  l = bl.download_all<float>();
}

TEST_P(BackendTest, MergeIsAssociativeAndCommutativeWithEmptyPartitions) {
  const int64_t rows = 53;
  const int32_t d = 40;
  std::mt19937_64 rng(seed_for("merge_algebra"));
  std::uniform_real_distribution<float> ov(-1.f, 1.f), lv(-10.f, 10.f);
  auto state = [&](bool some_empty) {
    std::vector<float> o(rows * d), l(rows);
    for (auto& x : o) x = ov(rng);
    for (int64_t r = 0; r < rows; ++r) l[r] = some_empty && r % 5 == 0 ? -std::numeric_limits<float>::infinity() : lv(rng);
    return std::make_pair(o, l);
  };
  auto a = state(false), b = state(true), c = state(true);
  std::vector<float> ab_o, ab_l, abc_o, abc_l, bc_o, bc_l, a_bc_o, a_bc_l, ba_o, ba_l;
  merge2(stream_, GetParam(), rows, d, a.first, a.second, b.first, b.second, ab_o, ab_l);
  merge2(stream_, GetParam(), rows, d, ab_o, ab_l, c.first, c.second, abc_o, abc_l);
  merge2(stream_, GetParam(), rows, d, b.first, b.second, c.first, c.second, bc_o, bc_l);
  merge2(stream_, GetParam(), rows, d, a.first, a.second, bc_o, bc_l, a_bc_o, a_bc_l);
  merge2(stream_, GetParam(), rows, d, b.first, b.second, a.first, a.second, ba_o, ba_l);
  // Two chained merges, each within the merge bound (n = 2): compare with slack for both.
  std::vector<float> all_o(a.first), all_l(a.second);
  all_o.insert(all_o.end(), b.first.begin(), b.first.end());
  all_o.insert(all_o.end(), c.first.begin(), c.first.end());
  all_l.insert(all_l.end(), b.second.begin(), b.second.end());
  all_l.insert(all_l.end(), c.second.begin(), c.second.end());
  StateRef ref = merge_reference(all_o, all_l, 3, rows, d, KV_DTYPE_F32);
  std::vector<double> ob(ref.o_bound), lb(ref.lse_bound);
  for (auto& x : ob) x *= 2;
  for (auto& x : lb) x *= 2;
  for (const auto* got : {&abc_o, &a_bc_o}) {
    CompareResult r = compare(*got, ref.o, ob, "o");
    EXPECT_TRUE(r.ok) << r.message;
  }
  for (const auto* got : {&abc_l, &a_bc_l}) {
    CompareResult r = compare(*got, ref.lse, lb, "lse");
    EXPECT_TRUE(r.ok) << r.message;
  }
  // Commutativity: the other order gives the same weights; only FMA rounding may differ.
  StateRef ref_ab = merge_reference([&] { auto v = a.first; v.insert(v.end(), b.first.begin(), b.first.end()); return v; }(),
                                    [&] { auto v = a.second; v.insert(v.end(), b.second.begin(), b.second.end()); return v; }(),
                                    2, rows, d, KV_DTYPE_F32);
  for (const auto* got : {&ab_o, &ba_o}) {
    CompareResult r = compare(*got, ref_ab.o, ref_ab.o_bound, "o");
    EXPECT_TRUE(r.ok) << r.message;
  }
  EXPECT_EQ(ab_l, ba_l);  // the lse is a symmetric function of the same rounded terms
  // Merging with an empty state leaves a state unchanged, exactly.
  std::vector<float> empty_l(rows, -std::numeric_limits<float>::infinity()), empty_o(rows * d, std::nanf(""));
  std::vector<float> ae_o, ae_l;
  merge2(stream_, GetParam(), rows, d, a.first, a.second, empty_o, empty_l, ae_o, ae_l);
  EXPECT_EQ(ae_o, a.first);
  EXPECT_EQ(ae_l, a.second);
}

TEST_P(BackendTest, SplitAttentionMergedEqualsWholeAttention) {
  // attention(q, [0, n)) = merge(attention(q, [0, a)), attention(q, [a, n))): the identity
  // split-KV, host+GPU partial attention and cascade attention rely on.
  const int32_t hq = 8, hkv = 2, d = 128;
  const int64_t n = 900, split = 333;
  std::mt19937_64 rng(seed_for("split_attention"));
  TypedData q = random_typed(KV_DTYPE_F32, hq * d, rng, -1.f, 1.f);
  TypedData k = random_typed(KV_DTYPE_F32, n * hkv * d, rng, -1.f, 1.f);
  TypedData v = random_typed(KV_DTYPE_F32, n * hkv * d, rng, -1.f, 1.f);
  const kv_backend be = GetParam();
  GuardedBuffer bq(stream_, be, KV_MEM_DEVICE, q.values.size() * 4), bk(stream_, be, KV_MEM_DEVICE, k.values.size() * 4),
      bv(stream_, be, KV_MEM_DEVICE, v.values.size() * 4), parts_o(stream_, be, KV_MEM_DEVICE, 2 * hq * d * 4),
      parts_l(stream_, be, KV_MEM_DEVICE, 2 * hq * 4), out_o(stream_, be, KV_MEM_DEVICE, hq * d * 4),
      out_l(stream_, be, KV_MEM_DEVICE, hq * 4);
  bq.upload(q.values);
  bk.upload(k.values);
  bv.upload(v.values);
  const float scale = 2.f / std::sqrt(static_cast<float>(d));
  auto* po = static_cast<float*>(parts_o.data());
  auto* pl = static_cast<float*>(parts_l.data());
  const int64_t row = hkv * d;
  KVT_CHECK(kv_attention_decode_async(stream_, KV_DTYPE_F32, bq.data(), bk.data(), bv.data(), po, pl, 1, hq, hkv, d,
                                      split, scale, nullptr, 0));
  KVT_CHECK(kv_attention_decode_async(stream_, KV_DTYPE_F32, bq.data(), static_cast<float*>(bk.data()) + split * row,
                                      static_cast<float*>(bv.data()) + split * row, po + hq * d, pl + hq, 1, hq, hkv, d,
                                      n - split, scale, nullptr, 0));
  KVT_CHECK(kv_merge_states_async(stream_, KV_DTYPE_F32, po, pl, 2, out_o.data(), static_cast<float*>(out_l.data()),
                                  hq, d));
  StateRef ref = attention_reference(q.values, k.values, v.values, 1, hq, hkv, d, n, scale, KV_DTYPE_F32);
  CompareResult ro = compare(out_o.download_all<float>(), ref.o, ref.o_bound, "o");
  CompareResult rl = compare(out_l.download_all<float>(), ref.lse, ref.lse_bound, "lse");
  EXPECT_TRUE(ro.ok) << ro.message;
  EXPECT_TRUE(rl.ok) << rl.message;
}

TEST_P(BackendTest, RooflineProbeMeasuresPositiveBandwidths) {
  kv_roofline r;
  ASSERT_EQ(kv_roofline_probe(stream_, 64 << 20, 3, &r), KV_STATUS_OK) << last_error();
  EXPECT_GT(r.read_bytes_per_s, 1e8);
  EXPECT_GT(r.copy_bytes_per_s, 1e8);
  EXPECT_EQ(r.repetitions, 3);
  if (GetParam() == KV_BACKEND_CUDA) {
    EXPECT_GT(r.h2d_bytes_per_s, 1e8);
    EXPECT_GT(r.d2h_bytes_per_s, 1e8);
  } else {
    EXPECT_EQ(r.h2d_bytes_per_s, 0.0);
  }
}

std::string backend_name(const ::testing::TestParamInfo<kv_backend>& param_info) {
  return param_info.param == KV_BACKEND_CPU ? "cpu" : "cuda";
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, ::testing::Values(KV_BACKEND_CPU, KV_BACKEND_CUDA), backend_name);

}  // namespace
}  // namespace kvt
