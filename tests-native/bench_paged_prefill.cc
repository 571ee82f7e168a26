// Perf runner of kv_paged_prefill_async: causal prefill over paged K/V (pages in a random
// physical order) beside the contiguous kv_attention_prefill_async at the same shapes, in
// TFLOP/s with causal FLOPs = 4 * Hq * D * sum over queries of the keys each attends.
// Each run's paged output is compared with the dense output (the two kernels share their
// arithmetic, so the bits must be equal): "matches_dense".
//
//   kvasir_bench_paged_prefill [--backend cpu|cuda] [--seq 8192,32768] [--q-len N] [--batch B]
//                              [--hq 32] [--hkv 8] [--d 128] [--page 16] [--reps 20] [--warmup 3]
//                              [--json FILE]
//
// One JSON object per case on stdout (one line each) and, with --json, in FILE (one per line).
// --q-len N < seq benchmarks chunked prefill (the last N of seq positions); default q_len = seq.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_args.h"
#include "test_util.h"

namespace kvt {
namespace {

struct Options {
  kv_backend backend = KV_BACKEND_CUDA;
  std::vector<int32_t> seqs{8192, 32768};
  int32_t q_len = 0;  // 0: the whole sequence
  int32_t batch = 1, hq = 32, hkv = 8, d = 128, page = 16;
  int reps = 20, warmup = 3;
  std::string json_path;
};

// Fast deterministic bf16 values in [-1, 1) (a large benchmark needs no better randomness).
void fill_bf16(std::vector<uint16_t>& v, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& e : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    e = to_bf16(static_cast<float>(static_cast<int64_t>(x >> 40) - (1 << 23)) / static_cast<float>(1 << 23));
  }
}

struct Timing {
  double median_ms = 0, p10_ms = 0, p90_ms = 0;
};

template <typename F>
Timing time_runs(kv_stream_t stream, const Options& opt, F run) {
  for (int i = 0; i < opt.warmup; ++i) run();
  KVT_CHECK(kv_stream_synchronize(stream));
  kv_event_t start, stop;
  KVT_CHECK(kv_event_init(stream, &start));
  KVT_CHECK(kv_event_init(stream, &stop));
  std::vector<double> ms;
  for (int i = 0; i < opt.reps; ++i) {
    KVT_CHECK(kv_event_record(start, stream));
    run();
    KVT_CHECK(kv_event_record(stop, stream));
    KVT_CHECK(kv_event_synchronize(stop));
    float t = 0.f;
    KVT_CHECK(kv_event_elapsed_ms(start, stop, &t));
    ms.push_back(t);
  }
  kv_event_free(start);
  kv_event_free(stop);
  std::sort(ms.begin(), ms.end());
  auto at = [&](double f) { return ms[std::min(ms.size() - 1, static_cast<size_t>(f * (ms.size() - 1) + 0.5))]; };
  return {at(0.5), at(0.1), at(0.9)};
}

int bench_main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return flag_value(argc, argv, i); };
    if (a == "--backend") {
      if (!parse_backend(value(), &opt.backend)) return 2;
    } else if (a == "--seq") {
      opt.seqs.clear();
      std::stringstream ss(value());
      for (std::string item; std::getline(ss, item, ',');) opt.seqs.push_back(std::stoi(item));
    } else if (a == "--q-len") {
      opt.q_len = std::stoi(value());
    } else if (a == "--batch") {
      opt.batch = std::stoi(value());
    } else if (a == "--hq") {
      opt.hq = std::stoi(value());
    } else if (a == "--hkv") {
      opt.hkv = std::stoi(value());
    } else if (a == "--d") {
      opt.d = std::stoi(value());
    } else if (a == "--page") {
      opt.page = std::stoi(value());
    } else if (a == "--reps") {
      opt.reps = std::max(1, std::stoi(value()));
    } else if (a == "--warmup") {
      opt.warmup = std::max(0, std::stoi(value()));
    } else if (a == "--json") {
      opt.json_path = value();
    } else {
      std::cerr << "usage: kvasir_bench_paged_prefill [--backend cpu|cuda] [--seq 8192,32768] [--q-len N] "
                   "[--batch B] [--hq H] [--hkv H] [--d D] [--page P] [--reps N] [--warmup N] [--json FILE]\n";
      return 2;
    }
  }
  const Target target{opt.backend, KV_CPU_ISA_AVX2};
  const std::string why = unavailable_reason(target);
  if (!why.empty()) {
    std::cerr << "backend " << target.name() << " unavailable: " << why << "\n";
    return 1;
  }
  std::ofstream json;
  if (!opt.json_path.empty()) json.open(opt.json_path);
  StreamHolder holder(target);
  kv_stream_t stream = holder.get();
  const kv_dtype dtype = KV_DTYPE_BF16;
  const float scale = 1.f / std::sqrt(static_cast<float>(opt.d));
  bool all_match = true;

  for (int32_t kv_len : opt.seqs) {
    const int32_t q_len = opt.q_len > 0 ? std::min(opt.q_len, kv_len) : kv_len;
    const int32_t B = opt.batch, P = opt.page, hkv = opt.hkv, d = opt.d, hq = opt.hq;
    const size_t q_elems = static_cast<size_t>(B) * q_len * hq * d;
    const size_t kv_elems = static_cast<size_t>(B) * kv_len * hkv * d;
    std::vector<uint16_t> q(q_elems), k(kv_elems), v(kv_elems);
    fill_bf16(q, 1 + kv_len);
    fill_bf16(k, 2 + kv_len);
    fill_bf16(v, 3 + kv_len);
    // Pool: head-major pages, physical order shuffled.
    const int32_t pages_per_seq = (kv_len + P - 1) / P;
    kv_paged_kv kv{};
    kv.page_tokens = P;
    kv.num_kv_heads = hkv;
    kv.head_dim = d;
    kv.token_stride = d;
    kv.head_stride = static_cast<int64_t>(P) * d;
    kv.page_stride = hkv * kv.head_stride;
    kv.num_pages = static_cast<int64_t>(B) * pages_per_seq;
    std::vector<int32_t> perm(static_cast<size_t>(kv.num_pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937_64(7));
    std::vector<uint16_t> kpool(static_cast<size_t>(kv.num_pages * kv.page_stride)), vpool(kpool.size());
    for (int32_t b = 0; b < B; ++b)
      for (int32_t pos = 0; pos < kv_len; ++pos)
        for (int32_t h = 0; h < hkv; ++h) {
          const int64_t phys = perm[static_cast<size_t>(b) * pages_per_seq + pos / P];
          const size_t dst = phys * kv.page_stride + h * kv.head_stride + (pos % P) * kv.token_stride;
          const size_t src = ((static_cast<size_t>(b) * kv_len + pos) * hkv + h) * d;
          std::memcpy(&kpool[dst], &k[src], 2 * d);
          std::memcpy(&vpool[dst], &v[src], 2 * d);
        }
    std::vector<int32_t> indptr(B + 1), lens(B, kv_len);
    for (int32_t b = 0; b <= B; ++b) indptr[b] = b * q_len;
    auto up = [&](const void* data, size_t bytes) {
      auto buf = std::make_unique<GuardedBuffer>(stream, opt.backend, KV_MEM_DEVICE, bytes);
      buf->upload(data, bytes);
      return buf;
    };
    auto qb = up(q.data(), q.size() * 2);
    auto kb = up(k.data(), k.size() * 2), vb = up(v.data(), v.size() * 2);
    auto kpb = up(kpool.data(), kpool.size() * 2), vpb = up(vpool.data(), vpool.size() * 2);
    auto ib = up(indptr.data(), indptr.size() * 4), lb = up(lens.data(), lens.size() * 4);
    auto pb = up(perm.data(), perm.size() * 4);  // table b: perm[b * pages_per_seq + j]
    GuardedBuffer o_paged(stream, opt.backend, KV_MEM_DEVICE, q_elems * 2), o_dense(stream, opt.backend, KV_MEM_DEVICE,
                                                                                      q_elems * 2);
    GuardedBuffer l_paged(stream, opt.backend, KV_MEM_DEVICE, q_elems / d * 4),
        l_dense(stream, opt.backend, KV_MEM_DEVICE, q_elems / d * 4);
    kv.k_pages = kpb->data();
    kv.v_pages = vpb->data();
    kv_page_table table{};
    table.pages = static_cast<const int32_t*>(pb->data());
    table.seq_stride = pages_per_seq;
    table.head_stride = 0;
    table.kv_lens = static_cast<const int32_t*>(lb->data());
    kv.reserved = 0;

    const double pairs = static_cast<double>(B) * (static_cast<double>(q_len) * (kv_len - q_len) +
                                                   0.5 * static_cast<double>(q_len) * (q_len + 1.0));
    const double flops = 4.0 * hq * d * pairs;
    auto paged = [&] {
      KVT_CHECK(kv_paged_prefill_async(stream, dtype, qb->data(), static_cast<const int32_t*>(ib->data()), &kv, &table,
                                       o_paged.data(), static_cast<float*>(l_paged.data()), B, hq, q_len, kv_len,
                                       scale));
    };
    auto dense = [&] {
      KVT_CHECK(kv_attention_prefill_async(stream, dtype, qb->data(), kb->data(), vb->data(), o_dense.data(),
                                           static_cast<float*>(l_dense.data()), B, q_len, kv_len, hq, hkv, d, scale));
    };
    const Timing tp = time_runs(stream, opt, paged);
    const Timing td = time_runs(stream, opt, dense);
    KVT_CHECK(kv_stream_synchronize(stream));
    std::vector<unsigned char> a(q_elems * 2), b(q_elems * 2);
    o_paged.download(a.data(), a.size());
    o_dense.download(b.data(), b.size());
    const bool match = a == b;
    all_match = all_match && match;
    for (int which = 0; which < 2; ++which) {
      const Timing& t = which == 0 ? tp : td;
      std::ostringstream line;
      line << "{\"op\": \"" << (which == 0 ? "paged_prefill" : "attention_prefill") << "\", \"backend\": \""
           << target.name() << "\", \"dtype\": \"bf16\", \"batch\": " << B << ", \"q_len\": " << q_len
           << ", \"kv_len\": " << kv_len << ", \"hq\": " << hq << ", \"hkv\": " << hkv << ", \"d\": " << d
           << ", \"page_tokens\": " << (which == 0 ? P : 0) << ", \"causal\": true, \"reps\": " << opt.reps
           << ", \"median_ms\": " << t.median_ms << ", \"p10_ms\": " << t.p10_ms << ", \"p90_ms\": " << t.p90_ms
           << ", \"flops\": " << flops << ", \"tflops\": " << flops / (t.median_ms * 1e-3) / 1e12;
      if (which == 0) line << ", \"matches_dense\": " << (match ? "true" : "false");
      line << "}";
      std::cout << line.str() << std::endl;
      if (json) json << line.str() << "\n";
    }
  }
  return all_match ? 0 : 3;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) {
  try {
    return kvt::bench_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kvasir_bench_paged_prefill: " << e.what() << "\n";
    return 1;
  }
}
