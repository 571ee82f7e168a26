// Perf runner of the decode attention over quantized KV (kv_quant_decode_async: Kitty, KIVI-2)
// against the bf16 paged decode (kv_paged_decode_async) on the same sequences, and against the
// read roofline measured in the same run (kv_roofline_probe).
//
// Each (batch, context) builds a bf16 paged pool of random K/V (pages in a random order, filled
// by kv_paged_append_async) and times the bf16 decode over it. Each format then packs every
// sequence the way the cache keeps it in steady state (kv_quant_pack_async, the product's pack
// path; timed and reported): a 32-token bf16 sink, n = (ctx - 32 - 128) / 128 quantized groups
// of 128 tokens, and the newest 128..255 tokens in bf16 pages; and times the quantized decode.
// Bytes read: the blocks (scales, mins and boost index included) plus the bf16 sink and tail
// pages. Verification: sequence 0's blocks are unpacked into bf16 scratch pages
// (kv_quant_unpack_async) and the bf16 paged decode over them must match the quantized decode's
// rows of sequence 0 (max |difference| reported; a real mismatch is far above 2^-5).
// Goals (issue 8): effective bandwidth >= 75% of the read roofline, >= 4x faster than bf16 at
// 32K, faster than bf16 at every batch size.
//
//   kvasir_bench_quant_decode [--backend cpu|cuda] [--batch N]... [--ctx N]... [--format F]...
//                             [--reps N] [--max-seconds S] [--max-kv-gb G] [--hq H] [--head-dim D]
//                             [--json FILE]
// F: kitty (boost D/4), kitty8 (D/8), kivi2 (no boost). One JSON object per case on stdout
// (lines starting with '{'), and the same lines in FILE.
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

constexpr int32_t kHkv = 8, kG = 128, kSink = 32, kP = 16;

struct Options {
  kv_backend backend = KV_BACKEND_CUDA;
  bool backend_given = false;
  std::vector<int32_t> batches, contexts;
  std::vector<std::string> formats;
  int reps = 30;
  double max_seconds = 1.0;
  double max_kv_gb = 60.0;
  int32_t hq = 32, d = 128;
  std::string json_path;
};

int32_t boost_of(const std::string& f, int32_t d) {
  if (f == "kitty") return d / 4;
  if (f == "kitty8") return d / 8;
  return 0;
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
    } else if (a == "--format") {
      const std::string f = value();
      if (f != "kitty" && f != "kitty8" && f != "kivi2") {
        std::fprintf(stderr, "--format must be kitty, kitty8 or kivi2, not %s\n", f.c_str());
        return 2;
      }
      opt.formats.push_back(f);
    } else if (a == "--reps") {
      opt.reps = std::max(5, std::atoi(value().c_str()));
    } else if (a == "--max-seconds") {
      opt.max_seconds = std::atof(value().c_str());
    } else if (a == "--max-kv-gb") {
      opt.max_kv_gb = std::atof(value().c_str());
    } else if (a == "--hq") {
      opt.hq = std::atoi(value().c_str());
      if (opt.hq < kHkv || opt.hq % kHkv != 0) {
        std::fprintf(stderr, "--hq must be a positive multiple of %d\n", kHkv);
        return 2;
      }
    } else if (a == "--head-dim") {
      opt.d = std::atoi(value().c_str());
      if (opt.d != 64 && opt.d != 128) {
        std::fprintf(stderr, "--head-dim must be 64 or 128\n");
        return 2;
      }
    } else if (a == "--json") {
      opt.json_path = value();
    } else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of bench_quant_decode.cc)\n", a.c_str());
      return 2;
    }
  }
  if (opt.batches.empty()) opt.batches = {1, 8, 32, 64};
  if (opt.contexts.empty()) opt.contexts = {8192, 32768, 131072};
  if (opt.formats.empty()) opt.formats = {"kitty", "kitty8", "kivi2"};
  if (!opt.backend_given && !unavailable_reason({KV_BACKEND_CUDA, KV_CPU_ISA_AVX2}).empty()) opt.backend = KV_BACKEND_CPU;
  const std::string why = unavailable_reason({opt.backend, KV_CPU_ISA_AVX2});
  if (!why.empty()) {
    std::fprintf(stderr, "backend unavailable: %s\n", why.c_str());
    return 2;
  }
  const int32_t D = opt.d, HQ = opt.hq;
  std::mt19937_64 rng(seed_for("bench_quant_decode"));
  kv_stream_t st;
  KVT_CHECK(kv_stream_init(opt.backend, 0, &st));
  kv_roofline roof;
  KVT_CHECK(kv_roofline_probe(st, 0, 0, &roof));
  std::fprintf(stderr, "read roofline %.1f GB/s\n", roof.read_bytes_per_s / 1e9);
  std::ofstream json;
  if (!opt.json_path.empty()) json.open(opt.json_path);
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const char* backend_name = opt.backend == KV_BACKEND_CUDA ? "cuda" : "cpu";
  int failures = 0;

  for (int32_t batch : opt.batches)
    for (int32_t ctx : opt.contexts) {
      const uint64_t row_elems = static_cast<uint64_t>(kHkv) * D;
      const uint64_t kv_bytes = 2ull * batch * ctx * row_elems * 2;
      if (kv_bytes / 1e9 > opt.max_kv_gb) {
        std::fprintf(stderr, "skip batch %d ctx %d: %.1f GB of bf16 KV > --max-kv-gb\n", batch, ctx, kv_bytes / 1e9);
        continue;
      }
      // The bf16 pool: [page][kv_head][token][d], pages in a random order, filled by append.
      const int64_t pages_per_seq = (ctx + kP - 1) / kP;
      kv_paged_kv kv{};
      kv.num_pages = static_cast<int64_t>(batch) * pages_per_seq;
      kv.page_tokens = kP;
      kv.num_kv_heads = kHkv;
      kv.head_dim = D;
      kv.page_stride = static_cast<int64_t>(kHkv) * kP * D;
      kv.head_stride = static_cast<int64_t>(kP) * D;
      kv.token_stride = D;
      Buffer kp(opt.backend, static_cast<uint64_t>(kv.num_pages) * kv.page_stride * 2);
      Buffer vp(opt.backend, static_cast<uint64_t>(kv.num_pages) * kv.page_stride * 2);
      kv.k_pages = kp.data();
      kv.v_pages = vp.data();
      std::vector<int32_t> perm(static_cast<size_t>(kv.num_pages));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      {
        // K/V rows of one sequence at a time (random), appended through the page permutation.
        Buffer kd(opt.backend, static_cast<uint64_t>(ctx) * row_elems * 2), vd(opt.backend, static_cast<uint64_t>(ctx) * row_elems * 2);
        std::vector<int64_t> slots(static_cast<size_t>(ctx));
        Buffer slots_b(opt.backend, slots.size() * 8);
        for (int32_t b = 0; b < batch; ++b) {
          fill_random(st, kd.data(), static_cast<uint64_t>(ctx) * row_elems * 2, rng);
          fill_random(st, vd.data(), static_cast<uint64_t>(ctx) * row_elems * 2, rng);
          for (int32_t t = 0; t < ctx; ++t)
            slots[t] = static_cast<int64_t>(perm[static_cast<size_t>(b) * pages_per_seq + t / kP]) * kP + t % kP;
          KVT_CHECK(kv_memcpy_async(st, slots_b.data(), slots.data(), slots.size() * 8));
          KVT_CHECK(kv_paged_append_async(st, KV_DTYPE_BF16, kd.data(), vd.data(),
                                          static_cast<const int64_t*>(slots_b.data()), 0, ctx, &kv));
          KVT_CHECK(kv_stream_synchronize(st));
        }
      }
      std::vector<int32_t> lens(static_cast<size_t>(batch), ctx);
      Buffer table_b(opt.backend, perm.size() * 4), lens_b(opt.backend, lens.size() * 4);
      KVT_CHECK(kv_memcpy_async(st, table_b.data(), perm.data(), perm.size() * 4));
      KVT_CHECK(kv_memcpy_async(st, lens_b.data(), lens.data(), lens.size() * 4));
      kv_page_table pt{static_cast<const int32_t*>(table_b.data()), pages_per_seq, 0,
                       static_cast<const int32_t*>(lens_b.data())};
      const uint64_t q_n = static_cast<uint64_t>(batch) * HQ * D;
      Buffer q(opt.backend, q_n * 2), o_bf16(opt.backend, q_n * 2), o_quant(opt.backend, q_n * 2);
      Buffer lse(opt.backend, static_cast<uint64_t>(batch) * HQ * 4);
      fill_random(st, q.data(), q_n * 2, rng);
      const uint64_t ws_paged = kv_paged_decode_workspace_bytes(st, batch, HQ, D, ctx);
      const uint64_t ws_quant = kv_quant_decode_workspace_bytes(st, batch, HQ, D, ctx);
      Buffer wsp(opt.backend, ws_paged), wsq(opt.backend, ws_quant);
      auto run_bf16 = [&] {
        KVT_CHECK(kv_paged_decode_async(st, KV_DTYPE_BF16, q.data(), &kv, &pt, nullptr, o_bf16.data(),
                                        static_cast<float*>(lse.data()), batch, HQ, ctx, scale,
                                        ws_paged ? wsp.data() : nullptr, ws_paged));
      };
      const std::vector<double> bf16_samples = time_runs(st, opt.reps, opt.max_seconds, run_bf16);
      const double t_bf16 = percentile(bf16_samples, 0.5);

      for (const std::string& format : opt.formats) {
        const kv_quant_format fmt{kG, D, boost_of(format, D), 0};
        kv_quant_layout layout{};
        KVT_CHECK(kv_quant_block_layout(&fmt, &layout));
        const int32_t n = std::max(0, (ctx - kSink - kG) / kG);  // groups: the newest 128..255 stay bf16
        kv_quant_kv qkv{};
        qkv.num_blocks = std::max<int64_t>(1, static_cast<int64_t>(batch) * n);
        qkv.num_kv_heads = kHkv;
        qkv.head_stride = static_cast<int64_t>(layout.bytes);
        qkv.block_stride = qkv.head_stride * kHkv;
        qkv.sink_tokens = kSink;
        qkv.format = fmt;
        Buffer blocks(opt.backend, static_cast<uint64_t>(qkv.num_blocks) * qkv.block_stride);
        qkv.blocks = blocks.data();
        std::vector<int32_t> src_pages, dst_blocks, counts(static_cast<size_t>(batch), n);
        std::vector<int32_t> qtab(static_cast<size_t>(batch) * std::max(1, n));
        for (int32_t b = 0; b < batch; ++b)
          for (int32_t j = 0; j < n; ++j) {
            const int32_t blk = b * n + j;
            dst_blocks.push_back(blk);
            qtab[static_cast<size_t>(b) * std::max(1, n) + j] = blk;
            for (int32_t i = 0; i < kG / kP; ++i)
              src_pages.push_back(perm[static_cast<size_t>(b) * pages_per_seq + kSink / kP + j * (kG / kP) + i]);
          }
        Buffer src_b(opt.backend, std::max<size_t>(src_pages.size(), 1) * 4), dst_b(opt.backend, std::max<size_t>(dst_blocks.size(), 1) * 4);
        Buffer qtab_b(opt.backend, qtab.size() * 4), cnt_b(opt.backend, counts.size() * 4);
        if (!src_pages.empty()) KVT_CHECK(kv_memcpy_async(st, src_b.data(), src_pages.data(), src_pages.size() * 4));
        if (!dst_blocks.empty()) KVT_CHECK(kv_memcpy_async(st, dst_b.data(), dst_blocks.data(), dst_blocks.size() * 4));
        KVT_CHECK(kv_memcpy_async(st, qtab_b.data(), qtab.data(), qtab.size() * 4));
        KVT_CHECK(kv_memcpy_async(st, cnt_b.data(), counts.data(), counts.size() * 4));
        KVT_CHECK(kv_stream_synchronize(st));
        const int32_t jobs = static_cast<int32_t>(dst_blocks.size());
        auto run_pack = [&] {
          KVT_CHECK(kv_quant_pack_async(st, KV_DTYPE_BF16, &kv, static_cast<const int32_t*>(src_b.data()),
                                        static_cast<const int32_t*>(dst_b.data()), jobs, &qkv));
        };
        const auto pack0 = std::chrono::steady_clock::now();
        run_pack();
        KVT_CHECK(kv_stream_synchronize(st));
        const double pack_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - pack0).count();
        kv_quant_table qt{static_cast<const int32_t*>(qtab_b.data()), std::max(1, n),
                          static_cast<const int32_t*>(cnt_b.data())};
        auto run_quant = [&] {
          KVT_CHECK(kv_quant_decode_async(st, KV_DTYPE_BF16, q.data(), &kv, &pt, &qkv, &qt, nullptr, o_quant.data(),
                                          static_cast<float*>(lse.data()), batch, HQ, ctx, scale,
                                          ws_quant ? wsq.data() : nullptr, ws_quant));
        };
        const std::vector<double> samples = time_runs(st, opt.reps, opt.max_seconds, run_quant);
        const double t_quant = percentile(samples, 0.5);

        // Verification on sequence 0: its blocks unpacked into scratch bf16 pages.
        double max_diff = 0;
        {
          kv_paged_kv scratch = kv;
          scratch.num_pages = pages_per_seq;
          Buffer sk(opt.backend, static_cast<uint64_t>(pages_per_seq) * kv.page_stride * 2);
          Buffer sv(opt.backend, static_cast<uint64_t>(pages_per_seq) * kv.page_stride * 2);
          scratch.k_pages = sk.data();
          scratch.v_pages = sv.data();
          // Logical page j of sequence 0 -> scratch page j: bf16 pages copied, blocks unpacked.
          std::vector<int32_t> ident(static_cast<size_t>(pages_per_seq));
          std::iota(ident.begin(), ident.end(), 0);
          for (int64_t j = 0; j < pages_per_seq; ++j) {
            const uint64_t bytes = static_cast<uint64_t>(kv.page_stride) * 2;
            KVT_CHECK(kv_memcpy_async(st, static_cast<char*>(sk.data()) + j * bytes,
                                      static_cast<const char*>(kp.data()) + perm[j] * bytes, bytes));
            KVT_CHECK(kv_memcpy_async(st, static_cast<char*>(sv.data()) + j * bytes,
                                      static_cast<const char*>(vp.data()) + perm[j] * bytes, bytes));
          }
          if (n > 0) {
            std::vector<int32_t> dst_pages;
            for (int32_t j = 0; j < n; ++j)
              for (int32_t i = 0; i < kG / kP; ++i) dst_pages.push_back(kSink / kP + j * (kG / kP) + i);
            Buffer dp(opt.backend, dst_pages.size() * 4);
            KVT_CHECK(kv_memcpy_async(st, dp.data(), dst_pages.data(), dst_pages.size() * 4));
            KVT_CHECK(kv_quant_unpack_async(st, KV_DTYPE_BF16, &qkv, static_cast<const int32_t*>(dst_b.data()),
                                            static_cast<const int32_t*>(dp.data()), n, &scratch));
            KVT_CHECK(kv_stream_synchronize(st));
          }
          Buffer id_b(opt.backend, ident.size() * 4), o1(opt.backend, static_cast<uint64_t>(HQ) * D * 2);
          KVT_CHECK(kv_memcpy_async(st, id_b.data(), ident.data(), ident.size() * 4));
          kv_page_table pt1{static_cast<const int32_t*>(id_b.data()), pages_per_seq, 0,
                            static_cast<const int32_t*>(lens_b.data())};
          KVT_CHECK(kv_paged_decode_async(st, KV_DTYPE_BF16, q.data(), &scratch, &pt1, nullptr, o1.data(), nullptr, 1, HQ,
                                          ctx, scale, ws_paged ? wsp.data() : nullptr, ws_paged));
          run_quant();
          const std::vector<float> a = download_bf16(st, o1.data(), static_cast<size_t>(HQ) * D);
          const std::vector<float> bq = download_bf16(st, o_quant.data(), static_cast<size_t>(HQ) * D);
          for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - bq[i])));
        }
        const bool matches = std::isfinite(max_diff) && max_diff <= 1.0 / 32;
        if (!matches) ++failures;
        const int32_t bf16_tokens = ctx - n * kG;
        const uint64_t quant_bytes = static_cast<uint64_t>(batch) * n * kHkv * layout.bytes +
                                     2ull * batch * bf16_tokens * row_elems * 2;
        const double bps = quant_bytes / (t_quant * 1e-3);
        const double fraction = roof.read_bytes_per_s > 0 ? bps / roof.read_bytes_per_s : NAN;
        const double speedup = t_bf16 / t_quant;
        const bool gpu = opt.backend == KV_BACKEND_CUDA;
        std::ostringstream line;
        line << "{\"op\": \"quant_decode\", \"backend\": \"" << backend_name << "\", \"format\": \"" << format
             << "\", \"boost_channels\": " << fmt.boost_channels << ", \"batch\": " << batch << ", \"ctx\": " << ctx
             << ", \"hq\": " << HQ << ", \"hkv\": " << kHkv << ", \"d\": " << D << ", \"group_tokens\": " << kG
             << ", \"sink_tokens\": " << kSink << ", \"quant_groups\": " << n << ", \"bf16_tokens\": " << bf16_tokens
             << ", \"block_bytes_per_head\": " << layout.bytes << ", \"bytes_read\": " << quant_bytes
             << ", \"bf16_kv_bytes\": " << kv_bytes << ", \"bytes_ratio_vs_bf16\": " << num(static_cast<double>(kv_bytes) / quant_bytes)
             << ", \"median_ms\": " << num(t_quant) << ", \"p10_ms\": " << num(percentile(samples, 0.1))
             << ", \"p90_ms\": " << num(percentile(samples, 0.9)) << ", \"bytes_per_s\": " << num(bps)
             << ", \"read_roofline_bytes_per_s\": " << num(roof.read_bytes_per_s)
             << ", \"fraction_of_roofline\": " << num(fraction) << ", \"bf16_paged_ms\": " << num(t_bf16)
             << ", \"bf16_fraction_of_roofline\": " << num(kv_bytes / (t_bf16 * 1e-3) / roof.read_bytes_per_s)
             << ", \"speedup_vs_bf16\": " << num(speedup)
             << ", \"goal_fraction\": 0.75, \"goal_fraction_met\": " << (gpu ? (fraction >= 0.75 ? "true" : "false") : "null")
             << ", \"goal_speedup_32k\": 4, \"goal_speedup_met\": "
             << (gpu && ctx == 32768 ? (speedup >= 4 ? "true" : "false") : "null")
             << ", \"faster_than_bf16\": " << (speedup > 1 ? "true" : "false") << ", \"pack_ms\": " << num(pack_ms)
             << ", \"pack_groups\": " << jobs << ", \"workspace_bytes\": " << ws_quant
             << ", \"max_abs_diff_vs_unpacked_bf16\": " << num(max_diff) << ", \"matches\": " << (matches ? "true" : "false")
             << ", \"samples\": " << samples.size() << "}";
        std::printf("%s\n", line.str().c_str());
        std::fflush(stdout);
        if (json.is_open()) json << line.str() << "\n";
      }
    }
  kv_stream_free(st);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) {
  try {
    return kvt::bench_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_quant_decode: %s\n", e.what());
    return 1;
  }
}
