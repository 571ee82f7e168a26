// Perf runner of the Quest operations: measures the read roofline with kv_roofline_probe, then
// times, in the same run,
//   quest_select    batch {1, 8, 32} x 32K context (2048 pages of 16), top_k 64, Hq 32, Hkv 8,
//                   D 128, bf16: summary bytes read / time against the read roofline;
//   summary_update  one full page per sequence and KV head (a decode step's filled pages);
//   dense_decode    (baseline) kv_attention_decode_async over the same context, the time Quest
//                   selection + sparse attention must beat by 5x.
// One JSON line per case on stdout (and in --json FILE).
//
//   kvasir_bench_paged_quest [--backend cpu|cuda] [--reps N] [--max-seconds S] [--context TOKENS]
//                            [--json FILE] [--no-baseline]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
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
  bool backend_given = false;
  int reps = 20;
  double max_seconds = 3.0;
  int32_t context = 32768;
  std::string json_path;
  bool baseline = true;
};

class Buffer {
 public:
  Buffer(kv_backend backend, uint64_t bytes) { KVT_CHECK(kv_buffer_init(backend, 0, KV_MEM_DEVICE, std::max<uint64_t>(bytes, 256), &b_)); }
  ~Buffer() { kv_buffer_free(b_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return kv_buffer_data(b_); }

 private:
  kv_buffer_t b_ = nullptr;
};

// Random bf16 values in [-1, 1) uploaded in chunks (a cheap generator: the values only need to vary).
void fill_bf16(kv_stream_t s, void* dst, uint64_t elems, uint64_t seed) {
  const uint64_t chunk = uint64_t{1} << 22;
  std::vector<uint16_t> host(static_cast<size_t>(std::min(chunk, elems)));
  uint64_t x = seed | 1;
  for (uint64_t done = 0; done < elems; done += chunk) {
    const uint64_t n = std::min(chunk, elems - done);
    for (uint64_t i = 0; i < n; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      host[i] = to_bf16(static_cast<float>(static_cast<int64_t>(x >> 40) - (int64_t{1} << 23)) / static_cast<float>(1 << 23));
    }
    KVT_CHECK(kv_memcpy_async(s, static_cast<uint16_t*>(dst) + done, host.data(), n * 2));
  }
  KVT_CHECK(kv_stream_synchronize(s));
}

struct Result {
  std::string op, params;
  double bytes = 0, median_ms = 0, p10_ms = 0, p90_ms = 0, single_ms = 0;
  int runs_per_sample = 1;
  bool verified = true;
  std::string note;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

// Times run() with device events around batches of back-to-back runs (about 1 ms each).
void time_it(kv_stream_t s, const Options& opt, const std::function<void()>& run, Result* r) {
  run();
  KVT_CHECK(kv_stream_synchronize(s));
  kv_event_t start, stop;
  KVT_CHECK(kv_event_init(s, &start));
  KVT_CHECK(kv_event_init(s, &stop));
  auto batch = [&](int runs) {
    KVT_CHECK(kv_event_record(start, s));
    for (int i = 0; i < runs; ++i) run();
    KVT_CHECK(kv_event_record(stop, s));
    KVT_CHECK(kv_event_synchronize(stop));
    float ms = 0;
    KVT_CHECK(kv_event_elapsed_ms(start, stop, &ms));
    return static_cast<double>(ms) / runs;
  };
  r->single_ms = batch(1);
  r->runs_per_sample = static_cast<int>(std::min(200.0, std::max(1.0, std::ceil(1.0 / std::max(r->single_ms, 1e-3)))));
  std::vector<double> samples;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < opt.reps; ++i) {
    samples.push_back(batch(r->runs_per_sample));
    if (i >= 4 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > opt.max_seconds) break;
  }
  KVT_CHECK(kv_stream_synchronize(s));
  kv_event_free(start);
  kv_event_free(stop);
  r->median_ms = percentile(samples, 0.5);
  r->p10_ms = percentile(samples, 0.1);
  r->p90_ms = percentile(samples, 0.9);
}

std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

std::string json_line(const Result& r, const Options& opt, const kv_roofline& roof) {
  const double bps = r.bytes / (r.median_ms * 1e-3);
  std::ostringstream o;
  o << "{\"op\": \"" << r.op << "\", \"params\": \"" << r.params << "\", \"backend\": \""
    << (opt.backend == KV_BACKEND_CUDA ? "cuda" : "cpu") << "\", \"roofline\": \"read\", \"bytes\": " << num(r.bytes)
    << ", \"median_ms\": " << num(r.median_ms) << ", \"p10_ms\": " << num(r.p10_ms) << ", \"p90_ms\": " << num(r.p90_ms)
    << ", \"single_run_ms\": " << num(r.single_ms) << ", \"runs_per_sample\": " << r.runs_per_sample
    << ", \"bytes_per_s\": " << num(bps) << ", \"read_roofline_bytes_per_s\": " << num(roof.read_bytes_per_s)
    << ", \"fraction_of_roofline\": " << num(roof.read_bytes_per_s > 0 ? bps / roof.read_bytes_per_s : NAN)
    << ", \"verified\": " << (r.verified ? "true" : "false");
  if (!r.note.empty()) o << ", \"note\": \"" << r.note << "\"";
  o << ", \"base_seed\": " << base_seed() << "}";
  return o.str();
}

int bench_main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return flag_value(argc, argv, i); };
    if (a == "--backend") {
      if (!parse_backend(value(), &opt.backend)) return 2;
      opt.backend_given = true;
    } else if (a == "--reps") {
      opt.reps = std::max(5, std::atoi(value().c_str()));
    } else if (a == "--max-seconds") {
      opt.max_seconds = std::atof(value().c_str());
    } else if (a == "--context") {
      opt.context = std::max(16, std::atoi(value().c_str()));
    } else if (a == "--json") {
      opt.json_path = value();
    } else if (a == "--no-baseline") {
      opt.baseline = false;
    } else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of bench_paged_quest.cc)\n", a.c_str());
      return 2;
    }
  }
  if (!opt.backend_given && !unavailable_reason({KV_BACKEND_CUDA, KV_CPU_ISA_AVX2}).empty()) opt.backend = KV_BACKEND_CPU;
  const std::string why = unavailable_reason({opt.backend, KV_CPU_ISA_AVX2});
  if (!why.empty()) {
    std::fprintf(stderr, "backend unavailable: %s\n", why.c_str());
    return 2;
  }
  (void)base_seed();
  kv_stream_t s;
  KVT_CHECK(kv_stream_init(opt.backend, 0, &s));
  kv_roofline roof;
  KVT_CHECK(kv_roofline_probe(s, 0, 0, &roof));
  std::fprintf(stderr, "read roofline %.1f GB/s\n", roof.read_bytes_per_s / 1e9);
  std::ofstream json;
  if (!opt.json_path.empty()) json.open(opt.json_path);
  auto emit = [&](const Result& r) {
    const std::string line = json_line(r, opt, roof);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (json.is_open()) json << line << "\n";
  };

  const int32_t p = 16, hkv = 8, hq = 32, d = 128, top_k = 64;
  const int32_t ctx = opt.context;
  const int32_t pages_per_seq = (ctx + p - 1) / p;
  int failures = 0;
  for (int32_t batch : {1, 8, 32}) {
    std::ostringstream params;
    params << "batch=" << batch << ",kv_len=" << ctx << ",P=" << p << ",top_k=" << top_k << ",Hq=" << hq << ",Hkv=" << hkv
           << ",D=" << d << ",bf16";
    const int64_t num_pages = static_cast<int64_t>(batch) * pages_per_seq;
    const int64_t page_elems = static_cast<int64_t>(hkv) * p * d;
    Buffer k(opt.backend, num_pages * page_elems * 2), v(opt.backend, 256);
    fill_bf16(s, k.data(), static_cast<uint64_t>(num_pages * page_elems), seed_for("k" + params.str()));
    kv_paged_kv kv{k.data(), v.data(), num_pages, p, hkv, d, 0, page_elems, static_cast<int64_t>(p) * d, d};
    const int64_t sum_page = static_cast<int64_t>(hkv) * 2 * d;
    Buffer sums(opt.backend, num_pages * sum_page * 2);
    kv_page_summaries sd{sums.data(), sum_page, 2 * d};
    // Tables: a shuffled permutation of each sequence's pages (shared by the heads).
    std::vector<int32_t> table(static_cast<size_t>(num_pages));
    std::mt19937_64 rng(seed_for("table" + params.str()));
    for (int32_t b = 0; b < batch; ++b) {
      auto first = table.begin() + static_cast<int64_t>(b) * pages_per_seq;
      std::iota(first, first + pages_per_seq, b * pages_per_seq);
      std::shuffle(first, first + pages_per_seq, rng);
    }
    Buffer table_buf(opt.backend, table.size() * 4), lens_buf(opt.backend, batch * 4);
    KVT_CHECK(kv_memcpy_async(s, table_buf.data(), table.data(), table.size() * 4));
    std::vector<int32_t> lens(static_cast<size_t>(batch), ctx);
    KVT_CHECK(kv_memcpy_async(s, lens_buf.data(), lens.data(), lens.size() * 4));
    kv_page_table t{static_cast<const int32_t*>(table_buf.data()), pages_per_seq, 0,
                    static_cast<const int32_t*>(lens_buf.data())};

    // Summary update of every page once (setup), then timed: the last page of each sequence.
    {
      std::vector<int32_t> all(static_cast<size_t>(num_pages)), full(static_cast<size_t>(num_pages), p);
      std::iota(all.begin(), all.end(), 0);
      Buffer all_buf(opt.backend, all.size() * 4), full_buf(opt.backend, full.size() * 4);
      KVT_CHECK(kv_memcpy_async(s, all_buf.data(), all.data(), all.size() * 4));
      KVT_CHECK(kv_memcpy_async(s, full_buf.data(), full.data(), full.size() * 4));
      KVT_CHECK(kv_page_summary_update_async(s, KV_DTYPE_BF16, &kv, static_cast<const int32_t*>(all_buf.data()),
                                             static_cast<const int32_t*>(full_buf.data()), static_cast<int32_t>(num_pages), &sd));
      KVT_CHECK(kv_stream_synchronize(s));
    }
    {
      std::vector<int32_t> last(static_cast<size_t>(batch)), full(static_cast<size_t>(batch), p);
      for (int32_t b = 0; b < batch; ++b) last[b] = table[static_cast<size_t>(b) * pages_per_seq + pages_per_seq - 1];
      Buffer last_buf(opt.backend, last.size() * 4), full_buf(opt.backend, full.size() * 4);
      KVT_CHECK(kv_memcpy_async(s, last_buf.data(), last.data(), last.size() * 4));
      KVT_CHECK(kv_memcpy_async(s, full_buf.data(), full.data(), full.size() * 4));
      Result r;
      r.op = "page_summary_update";
      r.params = "pages=" + std::to_string(batch) + " (1 per sequence),P=16,Hkv=8,D=128,bf16";
      r.bytes = static_cast<double>(batch) * hkv * (static_cast<double>(p) * d * 2 + 2.0 * d * 2);
      time_it(s, opt, [&] {
        KVT_CHECK(kv_page_summary_update_async(s, KV_DTYPE_BF16, &kv, static_cast<const int32_t*>(last_buf.data()),
                                               static_cast<const int32_t*>(full_buf.data()), batch, &sd));
      }, &r);
      emit(r);
    }
    // Quest selection.
    {
      Buffer q(opt.backend, static_cast<uint64_t>(batch) * hq * d * 2);
      fill_bf16(s, q.data(), static_cast<uint64_t>(batch) * hq * d, seed_for("q" + params.str()));
      const uint64_t ws_bytes = kv_quest_select_workspace_bytes(s, batch, hkv, p, ctx);
      Buffer ws(opt.backend, ws_bytes), idx(opt.backend, static_cast<uint64_t>(batch) * hkv * top_k * 4),
          cnt(opt.backend, static_cast<uint64_t>(batch) * hkv * 4);
      Result r;
      r.op = "quest_select";
      r.params = params.str();
      // Summaries of every non-newest page (min and max rows) plus q, read once.
      r.bytes = static_cast<double>(batch) * hkv * (pages_per_seq - 1) * 2.0 * d * 2 + static_cast<double>(batch) * hq * d * 2;
      auto run = [&] {
        KVT_CHECK(kv_quest_select_async(s, KV_DTYPE_BF16, q.data(), &kv, &t, &sd, batch, hq, ctx, top_k,
                                        static_cast<int32_t*>(idx.data()), static_cast<int32_t*>(cnt.data()), top_k,
                                        ws_bytes ? ws.data() : nullptr, ws_bytes));
      };
      time_it(s, opt, run, &r);
      // Sanity of the last run's output: top_k ascending distinct pages ending with the newest.
      std::vector<int32_t> hi(static_cast<size_t>(batch) * hkv * top_k), hc(static_cast<size_t>(batch) * hkv);
      KVT_CHECK(kv_memcpy_async(s, hi.data(), idx.data(), hi.size() * 4));
      KVT_CHECK(kv_memcpy_async(s, hc.data(), cnt.data(), hc.size() * 4));
      KVT_CHECK(kv_stream_synchronize(s));
      const int32_t want = std::min(top_k, pages_per_seq);
      for (size_t row = 0; row < hc.size(); ++row) {
        const int32_t* x = hi.data() + row * top_k;
        bool ok = hc[row] == want && x[want - 1] == pages_per_seq - 1;
        for (int32_t i = 1; ok && i < want; ++i) ok = x[i - 1] < x[i] && x[i - 1] >= 0;
        if (!ok) {
          r.verified = false;
          r.note = "row " + std::to_string(row) + " is not a valid selection";
          break;
        }
      }
      if (!r.verified) ++failures;
      emit(r);
    }
    // Dense decode baseline over the same context (contiguous K/V).
    if (opt.baseline) {
      const uint64_t kv_elems = static_cast<uint64_t>(batch) * ctx * hkv * d;
      Buffer dk(opt.backend, kv_elems * 2), dv(opt.backend, kv_elems * 2), q(opt.backend, static_cast<uint64_t>(batch) * hq * d * 2),
          o(opt.backend, static_cast<uint64_t>(batch) * hq * d * 2);
      KVT_CHECK(kv_memset_async(s, dk.data(), 0x3c, kv_elems * 2));
      KVT_CHECK(kv_memset_async(s, dv.data(), 0x3c, kv_elems * 2));
      KVT_CHECK(kv_memset_async(s, q.data(), 0x3c, static_cast<uint64_t>(batch) * hq * d * 2));
      const uint64_t ws_bytes = kv_attention_decode_workspace_bytes(s, batch, hq, d, ctx);
      Buffer ws(opt.backend, ws_bytes);
      Result r;
      r.op = "dense_decode_baseline";
      r.params = params.str();
      r.bytes = 2.0 * kv_elems * 2;
      time_it(s, opt, [&] {
        KVT_CHECK(kv_attention_decode_async(s, KV_DTYPE_BF16, q.data(), dk.data(), dv.data(), o.data(), nullptr, batch, hq,
                                            hkv, d, ctx, 0.088f, ws_bytes ? ws.data() : nullptr, ws_bytes));
      }, &r);
      emit(r);
    }
  }
  kv_stream_free(s);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) { return kvt::bench_main(argc, argv); }
