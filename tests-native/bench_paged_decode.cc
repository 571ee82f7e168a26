// Perf runner of the paged decode (kv_paged_decode_async) against the read roofline measured
// in the same run (kv_roofline_probe), beside the dense kv_attention_decode_async on the same
// K/V stored contiguous. Shape of the acceptance benchmark: bf16, Hq = 32, Hkv = 8, D = 128,
// page 16, batch x context in {1, 8, 32, 128} x {1K, 8K, 32K, 128K}, skipping cases whose
// K/V exceed --max-kv-gb (paged pool and dense copy both live on the device).
//
// The dense K/V is filled with random bf16 values; the paged pool is built from it by
// kv_paged_append_async through a random page permutation (the product's append path), so the
// two ops read the same values and their outputs are compared (max |difference|, reported).
// Figures: KV bytes read (2 x batch x context x Hkv x D x 2) per median run time; goal 90% of
// the read roofline when a step reads >= 1 GB, 85% at batch 1 from 32K tokens.
//
// --quest-k K adds Quest at K pages per case: kv_quest_select_async then the sparse
// kv_paged_decode_async over its selection, timed together and apart, against the full paged
// decode of the same case (the goal: >= 5x faster at 32K with K = 64).
//
// --kernel K (auto, cuda-core or tensor-core; repeatable, default auto) runs the paged decode
// with each named CUDA kernel (KVASIR_PAGED_DECODE_KERNEL, see native/cuda/paged_decode.cu),
// one JSON line each ("kernel"), so `--kernel cuda-core --kernel tensor-core` compares them in
// one run; auto is the tensor-core kernel for these bf16 shapes. tensor-core-bf16p is that
// kernel with P rounded to bf16 before P V (one MMA instead of two; outside the tests' error
// bound, measured only to price the second MMA). --head-dim 64 runs D = 64.
//
//   kvasir_bench_paged_decode [--backend cpu|cuda] [--batch N]... [--ctx N]... [--reps N]
//                             [--max-seconds S] [--max-kv-gb G] [--page-tokens P] [--quest-k K]
//                             [--hq H] [--head-dim D] [--kernel K]... [--json FILE]
//
// One JSON object per case on stdout (lines starting with '{'), and the same lines in FILE.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_args.h"
#include "bench_util.h"
#include "test_util.h"

namespace kvt {
namespace {

constexpr int32_t kHkv = 8;
int32_t g_hq = 32;  // --hq: query heads (the GQA group is g_hq / 8); 32 is the acceptance shape
int32_t g_d = 128;   // --head-dim: 64 or 128 (128 is the acceptance shape)

struct Options {
  kv_backend backend = KV_BACKEND_CUDA;
  bool backend_given = false;
  std::vector<int32_t> batches, contexts;
  int reps = 30;
  double max_seconds = 2.0;
  double max_kv_gb = 60.0;
  int32_t page_tokens = 16;
  int32_t quest_k = 0;
  std::vector<std::string> kernels;  // --kernel, in order; empty: auto
  std::string json_path;
};

constexpr const char* kKernelEnv = "KVASIR_PAGED_DECODE_KERNEL";

template <typename Run>
std::vector<double> time_runs(kv_stream_t st, const Options& opt, Run run) {
  return kvt::time_runs(st, opt.reps, opt.max_seconds, run);
}

// Quest at opt.quest_k pages on the case's pool: summaries of every page, then select + sparse
// decode. Returns 1 when the selection does not hold K pages with the newest among them.
int quest_case(kv_stream_t st, const Options& opt, const kv_roofline& roof, const kv_paged_kv& kv,
               const kv_page_table& pt, const void* q, int32_t batch, int32_t ctx, double full_median,
               std::ofstream& json) {
  const int32_t P = kv.page_tokens, K = opt.quest_k;
  const int64_t pages = kv.num_pages;
  Buffer sums(opt.backend, static_cast<uint64_t>(pages) * kHkv * 2 * g_d * 2);
  kv_page_summaries summaries{sums.data(), static_cast<int64_t>(kHkv) * 2 * g_d, 2 * g_d};
  std::vector<int32_t> all(static_cast<size_t>(pages)), valid(static_cast<size_t>(pages), P);
  std::iota(all.begin(), all.end(), 0);
  Buffer all_b(opt.backend, all.size() * 4), valid_b(opt.backend, valid.size() * 4);
  KVT_CHECK(kv_memcpy_async(st, all_b.data(), all.data(), all.size() * 4));
  KVT_CHECK(kv_memcpy_async(st, valid_b.data(), valid.data(), valid.size() * 4));
  KVT_CHECK(kv_page_summary_update_async(st, KV_DTYPE_BF16, &kv, static_cast<const int32_t*>(all_b.data()),
                                         static_cast<const int32_t*>(valid_b.data()), static_cast<int32_t>(pages),
                                         &summaries));
  const uint64_t sel_n = static_cast<uint64_t>(batch) * kHkv;
  Buffer idx(opt.backend, sel_n * K * 4), cnt(opt.backend, sel_n * 4);
  const uint64_t ws_q = kv_quest_select_workspace_bytes(st, batch, kHkv, P, ctx);
  Buffer wsq(opt.backend, ws_q > 0 ? ws_q : 16);
  const uint64_t ws_d = kv_paged_decode_workspace_bytes(st, batch, g_hq, g_d, ctx);
  Buffer wsd(opt.backend, ws_d > 0 ? ws_d : 16);
  const uint64_t q_n = static_cast<uint64_t>(batch) * g_hq * g_d;
  Buffer o(opt.backend, q_n * 2), lse(opt.backend, static_cast<uint64_t>(batch) * g_hq * 4);
  kv_page_select sel{static_cast<const int32_t*>(idx.data()), static_cast<const int32_t*>(cnt.data()), K, 0};
  const float scale = 1.f / std::sqrt(static_cast<float>(g_d));
  auto select = [&] {
    KVT_CHECK(kv_quest_select_async(st, KV_DTYPE_BF16, q, &kv, &pt, &summaries, batch, g_hq, ctx, K,
                                    static_cast<int32_t*>(idx.data()), static_cast<int32_t*>(cnt.data()), K,
                                    ws_q ? wsq.data() : nullptr, ws_q));
  };
  auto sparse = [&] {
    KVT_CHECK(kv_paged_decode_async(st, KV_DTYPE_BF16, q, &kv, &pt, &sel, o.data(), static_cast<float*>(lse.data()),
                                    batch, g_hq, ctx, scale, ws_d ? wsd.data() : nullptr, ws_d));
  };
  select();
  KVT_CHECK(kv_stream_synchronize(st));
  std::vector<int32_t> counts(sel_n), first(sel_n * K);
  KVT_CHECK(kv_memcpy_async(st, counts.data(), cnt.data(), sel_n * 4));
  KVT_CHECK(kv_memcpy_async(st, first.data(), idx.data(), sel_n * K * 4));
  KVT_CHECK(kv_stream_synchronize(st));
  const int32_t n_pages = (ctx + P - 1) / P, want = std::min(K, n_pages);
  bool ok = true;
  for (uint64_t r = 0; r < sel_n; ++r)
    ok &= counts[r] == want && first[r * K + want - 1] == n_pages - 1;  // ascending, newest last
  const double t_select = percentile(time_runs(st, opt, select), 0.5);
  const double t_sparse = percentile(time_runs(st, opt, sparse), 0.5);
  const double t_both = percentile(time_runs(st, opt, [&] { select(); sparse(); }), 0.5);
  const uint64_t sparse_bytes = 2ull * batch * kHkv * static_cast<uint64_t>(want) * P * g_d * 2;
  const uint64_t summary_bytes = static_cast<uint64_t>(batch) * kHkv * n_pages * 2 * g_d * 2;
  std::ostringstream line;
  line << "{\"op\": \"quest_decode\", \"backend\": \"" << (opt.backend == KV_BACKEND_CUDA ? "cuda" : "cpu")
       << "\", \"dtype\": \"bf16\", \"batch\": " << batch << ", \"ctx\": " << ctx << ", \"hq\": " << g_hq
       << ", \"hkv\": " << kHkv << ", \"d\": " << g_d << ", \"page_tokens\": " << P << ", \"top_k\": " << K
       << ", \"select_ms\": " << num(t_select) << ", \"sparse_decode_ms\": " << num(t_sparse)
       << ", \"quest_ms\": " << num(t_both) << ", \"full_paged_decode_ms\": " << num(full_median)
       << ", \"speedup_vs_full\": " << num(full_median / t_both) << ", \"goal_speedup\": 5"
       << ", \"bytes_read\": " << (sparse_bytes + summary_bytes) << ", \"fraction_of_roofline\": "
       << num((sparse_bytes + summary_bytes) / (t_both * 1e-3) / roof.read_bytes_per_s)
       << ", \"selection_ok\": " << (ok ? "true" : "false") << "}";
  std::printf("%s\n", line.str().c_str());
  std::fflush(stdout);
  if (json.is_open()) json << line.str() << "\n";
  return ok ? 0 : 1;
}

int bench_main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return flag_value(argc, argv, i); };
    if (a == "--backend") {
      if (!parse_backend(value(), &opt.backend)) return 2;
      opt.backend_given = true;
    } else if (a == "--batch") {
      opt.batches.push_back(std::atoi(value().c_str()));
    } else if (a == "--ctx") {
      opt.contexts.push_back(std::atoi(value().c_str()));
    } else if (a == "--reps") {
      opt.reps = std::max(5, std::atoi(value().c_str()));
    } else if (a == "--max-seconds") {
      opt.max_seconds = std::atof(value().c_str());
    } else if (a == "--max-kv-gb") {
      opt.max_kv_gb = std::atof(value().c_str());
    } else if (a == "--page-tokens") {
      opt.page_tokens = std::atoi(value().c_str());
    } else if (a == "--hq") {
      g_hq = std::atoi(value().c_str());
      if (g_hq < kHkv || g_hq % kHkv != 0) {
        std::fprintf(stderr, "--hq must be a positive multiple of %d\n", kHkv);
        return 2;
      }
    } else if (a == "--head-dim") {
      g_d = std::atoi(value().c_str());
      if (g_d != 64 && g_d != 128) {
        std::fprintf(stderr, "--head-dim must be 64 or 128\n");
        return 2;
      }
    } else if (a == "--kernel") {
      const std::string k = value();
      if (k != "auto" && k != "cuda-core" && k != "tensor-core" && k != "tensor-core-bf16p") {
        std::fprintf(stderr, "--kernel must be auto, cuda-core, tensor-core or tensor-core-bf16p\n");
        return 2;
      }
      opt.kernels.push_back(k);
    } else if (a == "--quest-k") {
      opt.quest_k = std::atoi(value().c_str());
    } else if (a == "--json") {
      opt.json_path = value();
    } else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of bench_paged_decode.cc)\n", a.c_str());
      return 2;
    }
  }
  if (opt.batches.empty()) opt.batches = {1, 8, 32, 128};
  if (opt.contexts.empty()) opt.contexts = {1024, 8192, 32768, 131072};
  if (opt.kernels.empty()) opt.kernels = {"auto"};
  if (!opt.backend_given && !unavailable_reason({KV_BACKEND_CUDA, KV_CPU_ISA_AVX2}).empty()) opt.backend = KV_BACKEND_CPU;
  const std::string why = unavailable_reason({opt.backend, KV_CPU_ISA_AVX2});
  if (!why.empty()) {
    std::fprintf(stderr, "backend unavailable: %s\n", why.c_str());
    return 2;
  }
  std::mt19937_64 rng(seed_for("bench_paged_decode"));
  kv_stream_t st;
  KVT_CHECK(kv_stream_init(opt.backend, 0, &st));
  kv_roofline roof;
  KVT_CHECK(kv_roofline_probe(st, 0, 0, &roof));
  std::fprintf(stderr, "read roofline %.1f GB/s (probe %llu bytes)\n", roof.read_bytes_per_s / 1e9,
               static_cast<unsigned long long>(roof.buffer_bytes));
  std::ofstream json;
  if (!opt.json_path.empty()) json.open(opt.json_path);
  const int32_t P = opt.page_tokens;
  const float scale = 1.f / std::sqrt(static_cast<float>(g_d));
  int failures = 0;

  for (int32_t batch : opt.batches)
    for (int32_t ctx : opt.contexts) {
      const uint64_t row_elems = static_cast<uint64_t>(kHkv) * g_d;
      const uint64_t kv_bytes = 2ull * batch * ctx * row_elems * 2;  // K and V, bf16
      if (kv_bytes / 1e9 > opt.max_kv_gb) {
        std::fprintf(stderr, "skip batch %d ctx %d: %.1f GB of KV > --max-kv-gb\n", batch, ctx, kv_bytes / 1e9);
        continue;
      }
      // Dense K/V [batch][ctx][Hkv][D], random.
      Buffer kd(opt.backend, kv_bytes / 2), vd(opt.backend, kv_bytes / 2);
      fill_random(st, kd.data(), kv_bytes / 2, rng);
      fill_random(st, vd.data(), kv_bytes / 2, rng);
      // Paged pool, head-major, pages in a random order, filled by kv_paged_append_async.
      const int64_t pages_per_seq = (ctx + P - 1) / P;
      kv_paged_kv kv{};
      kv.num_pages = static_cast<int64_t>(batch) * pages_per_seq;
      kv.page_tokens = P;
      kv.num_kv_heads = kHkv;
      kv.head_dim = g_d;
      kv.page_stride = static_cast<int64_t>(kHkv) * P * g_d;
      kv.head_stride = static_cast<int64_t>(P) * g_d;
      kv.token_stride = g_d;
      Buffer kp(opt.backend, static_cast<uint64_t>(kv.num_pages) * kv.page_stride * 2);
      Buffer vp(opt.backend, static_cast<uint64_t>(kv.num_pages) * kv.page_stride * 2);
      kv.k_pages = kp.data();
      kv.v_pages = vp.data();
      std::vector<int32_t> perm(static_cast<size_t>(kv.num_pages));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      std::vector<int64_t> slots(static_cast<size_t>(ctx));
      Buffer slots_b(opt.backend, slots.size() * 8);
      for (int32_t b = 0; b < batch; ++b) {
        for (int32_t t = 0; t < ctx; ++t)
          slots[t] = static_cast<int64_t>(perm[static_cast<size_t>(b) * pages_per_seq + t / P]) * P + t % P;
        KVT_CHECK(kv_memcpy_async(st, slots_b.data(), slots.data(), slots.size() * 8));
        const uint64_t seq_off = static_cast<uint64_t>(b) * ctx * row_elems * 2;
        KVT_CHECK(kv_paged_append_async(st, KV_DTYPE_BF16, static_cast<char*>(kd.data()) + seq_off,
                                        static_cast<char*>(vd.data()) + seq_off,
                                        static_cast<const int64_t*>(slots_b.data()), 0, ctx, &kv));
        KVT_CHECK(kv_stream_synchronize(st));  // slots_b is reused
      }
      std::vector<int32_t> table(perm.begin(), perm.end()), lens(static_cast<size_t>(batch), ctx);
      Buffer table_b(opt.backend, table.size() * 4), lens_b(opt.backend, lens.size() * 4);
      KVT_CHECK(kv_memcpy_async(st, table_b.data(), table.data(), table.size() * 4));
      KVT_CHECK(kv_memcpy_async(st, lens_b.data(), lens.data(), lens.size() * 4));
      kv_page_table pt{static_cast<const int32_t*>(table_b.data()), pages_per_seq, 0,
                       static_cast<const int32_t*>(lens_b.data())};
      const uint64_t q_n = static_cast<uint64_t>(batch) * g_hq * g_d;
      Buffer q(opt.backend, q_n * 2), o_paged(opt.backend, q_n * 2), o_dense(opt.backend, q_n * 2);
      Buffer lse_paged(opt.backend, static_cast<uint64_t>(batch) * g_hq * 4), lse_dense(opt.backend, static_cast<uint64_t>(batch) * g_hq * 4);
      fill_random(st, q.data(), q_n * 2, rng);
      const uint64_t ws_paged = kv_paged_decode_workspace_bytes(st, batch, g_hq, g_d, ctx);
      const uint64_t ws_dense = kv_attention_decode_workspace_bytes(st, batch, g_hq, g_d, ctx);
      Buffer wsp(opt.backend, ws_paged), wsd(opt.backend, ws_dense);

      auto run_paged = [&] {
        KVT_CHECK(kv_paged_decode_async(st, KV_DTYPE_BF16, q.data(), &kv, &pt, nullptr, o_paged.data(),
                                        static_cast<float*>(lse_paged.data()), batch, g_hq, ctx, scale,
                                        ws_paged ? wsp.data() : nullptr, ws_paged));
      };
      auto run_dense = [&] {
        KVT_CHECK(kv_attention_decode_async(st, KV_DTYPE_BF16, q.data(), kd.data(), vd.data(), o_dense.data(),
                                            static_cast<float*>(lse_dense.data()), batch, g_hq, kHkv, g_d, ctx, scale,
                                            ws_dense ? wsd.data() : nullptr, ws_dense));
      };
      // The paged decode once per --kernel (KVASIR_PAGED_DECODE_KERNEL, read by every call),
      // then the dense decode; each paged output is compared with the dense one.
      const size_t n_paged = opt.kernels.size();
      double full_median = 0;
      for (size_t which = 0; which <= n_paged; ++which) {
        const bool paged = which < n_paged;
        if (paged) setenv(kKernelEnv, opt.kernels[which].c_str(), 1);
        double max_diff = 0;
        bool matches = true;
        if (paged) {
          run_paged();
          run_dense();
          KVT_CHECK(kv_stream_synchronize(st));
          const std::vector<float> a = download_bf16(st, o_paged.data(), q_n), b = download_bf16(st, o_dense.data(), q_n);
          for (size_t i = 0; i < q_n; ++i) max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
          // Two bf16 roundings of |o| <= 1 apart, plus fp32 noise: a mismatch is far above 2^-7.
          matches = std::isfinite(max_diff) && max_diff <= 1.0 / 64;
          if (!matches) ++failures;
        }
        const std::vector<double> samples = paged ? time_runs(st, opt, run_paged) : time_runs(st, opt, run_dense);
        const double median = percentile(samples, 0.5);
        if (which == 0) full_median = median;  // the first --kernel is what Quest is compared with
        const double bps = kv_bytes / (median * 1e-3);
        const double fraction = roof.read_bytes_per_s > 0 ? bps / roof.read_bytes_per_s : NAN;
        double goal = 0;
        if (paged && opt.backend == KV_BACKEND_CUDA) {
          if (kv_bytes >= 1e9) goal = 0.90;
          else if (batch == 1 && ctx >= 32768) goal = 0.85;
        }
        std::ostringstream line;
        line << "{\"op\": \"" << (paged ? "paged_decode" : "dense_decode") << "\", \"backend\": \""
             << (opt.backend == KV_BACKEND_CUDA ? "cuda" : "cpu") << "\", \"kernel\": "
             << (paged ? "\"" + opt.kernels[which] + "\"" : std::string("null")) << ", \"dtype\": \"bf16\", \"batch\": " << batch
             << ", \"ctx\": " << ctx << ", \"hq\": " << g_hq << ", \"hkv\": " << kHkv << ", \"d\": " << g_d
             << ", \"page_tokens\": " << (paged ? std::to_string(P) : "null") << ", \"kv_bytes\": " << kv_bytes
             << ", \"median_ms\": " << num(median) << ", \"p10_ms\": " << num(percentile(samples, 0.1))
             << ", \"p90_ms\": " << num(percentile(samples, 0.9)) << ", \"kv_bytes_per_s\": " << num(bps)
             << ", \"read_roofline_bytes_per_s\": " << num(roof.read_bytes_per_s)
             << ", \"fraction_of_roofline\": " << num(fraction) << ", \"goal\": " << (goal > 0 ? num(goal) : "null")
             << ", \"goal_met\": " << (goal > 0 ? (fraction >= goal ? "true" : "false") : "null")
             << ", \"workspace_bytes\": " << (paged ? ws_paged : ws_dense)
             << ", \"max_abs_diff_paged_vs_dense\": " << (paged ? num(max_diff) : "null")
             << ", \"matches_dense\": " << (paged ? (matches ? "true" : "false") : "null")
             << ", \"samples\": " << samples.size() << "}";
        std::printf("%s\n", line.str().c_str());
        std::fflush(stdout);
        if (json.is_open()) json << line.str() << "\n";
      }
      if (n_paged > 0) setenv(kKernelEnv, opt.kernels[0].c_str(), 1);  // Quest runs the first --kernel
      if (opt.quest_k > 0) failures += quest_case(st, opt, roof, kv, pt, q.data(), batch, ctx, full_median, json);
    }
  kv_stream_free(st);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) { return kvt::bench_main(argc, argv); }
