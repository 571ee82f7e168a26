// Perf mode of the op case list: measures the device's ceilings with the roofline probe,
// then times every perf case (device events, median of the repetitions) and reports each
// against the ceiling it names, in the same run. Writes a perf record (DESIGN.md
// "Rooflines and the perf record"): JSON plus a markdown table.
//
//   kvasir_bench_ops [--backend cpu|cuda] [--op SUBSTRING] [--reps N] [--max-seconds S]
//                    [--json FILE] [--md FILE] [--topic NAME] [--no-verify]
//
// Stamps: KVASIR_GIT_COMMIT, KVASIR_DEVICE_LINE (nvidia-smi), KVASIR_DATE, KVASIR_COMMAND.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_args.h"
#include "op_cases.h"
#include "test_util.h"

namespace kvt {
namespace {

struct Options {
  kv_backend backend = KV_BACKEND_CPU;
  bool backend_given = false;
  std::string op_filter;
  int reps = 20;
  double max_seconds = 4.0;  // per case: enough repetitions for a median, bounded device time
  std::string json_path, md_path, topic = "kernels";
  bool verify = true;
};

struct Figure {
  std::string op, params;
  bool baseline = false;
  Roofline roofline;
  double bytes = 0, median_ms = 0, p10_ms = 0, p90_ms = 0, bytes_per_s = 0, ceiling = 0, fraction = 0, goal = 0;
  double same_size_copy_bytes_per_s = 0;  // a device copy of the same bytes, same run
  double flops = 0, flops_per_s = 0, goal_flops_per_s = 0;  // compute ops (flops > 0)
  int runs_per_sample = 1;
  double single_run_ms = 0;  // one run alone, launch overhead included
  bool verified = false;
  std::string verify_error;
  std::vector<double> samples_ms;
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

// Four significant digits: the raw samples stay small in the record.
std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  double pos = p * (v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

double ceiling_of(const kv_roofline& r, Roofline which) {
  switch (which) {
    case Roofline::kRead: return r.read_bytes_per_s;
    case Roofline::kCopy: return r.copy_bytes_per_s;
    case Roofline::kHostToDevice: return r.h2d_bytes_per_s;
    case Roofline::kDeviceToHost: return r.d2h_bytes_per_s;
    case Roofline::kCompute: return r.gemm_bf16_flops_per_s;
  }
  return 0;
}

Figure measure(const CaseEntry& entry, kv_stream_t stream, const Options& opt, const kv_roofline& roof) {
  auto c = entry.make();
  Figure f;
  f.op = c->op();
  f.params = c->params();
  f.baseline = c->is_baseline();
  f.roofline = c->roofline();
  f.bytes = c->bytes_moved();
  f.goal = c->goal();
  f.flops = c->flops();
  f.goal_flops_per_s = c->goal_flops_per_s();
  c->prepare(stream, opt.backend, seed_for(entry.name));
  c->run(stream);
  KVT_CHECK(kv_stream_synchronize(stream));
  if (opt.verify) {
    std::vector<std::string> failures = c->verify();
    f.verified = failures.empty();
    if (!failures.empty()) f.verify_error = failures.front();
  }
  kv_event_t start, stop;
  KVT_CHECK(kv_event_init(stream, &start));
  KVT_CHECK(kv_event_init(stream, &stop));
  c->run(stream);  // second warm-up
  KVT_CHECK(kv_stream_synchronize(stream));
  // One run alone tells how many back-to-back runs fill about a millisecond: samples time such
  // batches, so the host's launch overhead overlaps device work as it does in a busy engine.
  auto time_runs = [&](int runs) {
    KVT_CHECK(kv_event_record(start, stream));
    for (int i = 0; i < runs; ++i) c->run(stream);
    KVT_CHECK(kv_event_record(stop, stream));
    KVT_CHECK(kv_event_synchronize(stop));
    float ms = 0;
    KVT_CHECK(kv_event_elapsed_ms(start, stop, &ms));
    return static_cast<double>(ms) / runs;
  };
  const double single_ms = time_runs(1);
  f.runs_per_sample = static_cast<int>(std::min(100.0, std::max(1.0, std::ceil(1.0 / std::max(single_ms, 1e-3)))));
  f.single_run_ms = single_ms;
  const auto wall0 = std::chrono::steady_clock::now();
  for (int r = 0; r < opt.reps; ++r) {
    f.samples_ms.push_back(time_runs(f.runs_per_sample));
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    if (r >= 4 && wall > opt.max_seconds) break;
  }
  KVT_CHECK(kv_stream_synchronize(stream));
  if (f.roofline == Roofline::kCopy && opt.backend == KV_BACKEND_CUDA) {
    // The copy ceiling comes from a multi-gigabyte copy; a copy of this case's own size shows
    // what launch and ramp cost at this size (small merges move ~100 MB).
    const uint64_t half = static_cast<uint64_t>(f.bytes / 2) / 256 * 256;
    kv_buffer_t a = nullptr, b = nullptr;
    KVT_CHECK(kv_buffer_init(opt.backend, 0, KV_MEM_DEVICE, half, &a));
    KVT_CHECK(kv_buffer_init(opt.backend, 0, KV_MEM_DEVICE, half, &b));
    KVT_CHECK(kv_memset_async(stream, kv_buffer_data(a), 0x5a, half));
    std::vector<double> copy_ms;
    for (int r = 0; r < 10; ++r) {
      KVT_CHECK(kv_event_record(start, stream));
      for (int i = 0; i < f.runs_per_sample; ++i) KVT_CHECK(kv_memcpy_async(stream, kv_buffer_data(b), kv_buffer_data(a), half));
      KVT_CHECK(kv_event_record(stop, stream));
      KVT_CHECK(kv_event_synchronize(stop));
      float ms = 0;
      KVT_CHECK(kv_event_elapsed_ms(start, stop, &ms));
      copy_ms.push_back(static_cast<double>(ms) / f.runs_per_sample);
    }
    f.same_size_copy_bytes_per_s = 2.0 * half / (percentile(copy_ms, 0.5) * 1e-3);
    kv_buffer_free(a);
    kv_buffer_free(b);
  }
  kv_event_free(start);
  kv_event_free(stop);
  f.median_ms = percentile(f.samples_ms, 0.5);
  f.p10_ms = percentile(f.samples_ms, 0.1);
  f.p90_ms = percentile(f.samples_ms, 0.9);
  f.bytes_per_s = f.bytes / (f.median_ms * 1e-3);
  f.flops_per_s = f.flops / (f.median_ms * 1e-3);
  f.ceiling = ceiling_of(roof, f.roofline);
  // A compute op is judged by FLOP/s. The probe does not measure the bf16 tensor rate yet
  // (gemm_bf16_flops_per_s = 0): such figures report achieved TFLOP/s and no fraction (NaN ->
  // null in the record, "n/a" in the table) rather than a made-up ceiling.
  const double achieved = f.roofline == Roofline::kCompute ? f.flops_per_s : f.bytes_per_s;
  f.fraction = f.ceiling > 0 ? achieved / f.ceiling : (f.roofline == Roofline::kCompute ? NAN : 0);
  return f;
}

std::string device_line(kv_backend backend) {
  kv_device_props p;
  if (kv_device_get_props(backend, 0, &p) != KV_STATUS_OK) return "unknown";
  std::ostringstream s;
  s << p.name << " (" << p.arch << ", " << p.total_memory_bytes / (1 << 20) << " MiB, " << p.compute_units
    << (backend == KV_BACKEND_CUDA ? " SMs)" : " threads)");
  return s.str();
}

// A figure's goal: a fraction of its roofline or, for compute ops, an absolute FLOP/s rate.
bool has_goal(const Figure& f) { return f.goal > 0 || f.goal_flops_per_s > 0; }
bool goal_met(const Figure& f) {
  return f.goal > 0 ? f.fraction >= f.goal : f.flops_per_s >= f.goal_flops_per_s;
}
const char* goal_met_json(const Figure& f) { return has_goal(f) ? (goal_met(f) ? "true" : "false") : "null"; }

std::string tflops(double flops_per_s) {
  char buf[32];
  const double t = flops_per_s / 1e12;
  std::snprintf(buf, sizeof buf, t >= 1 ? "%.1f" : "%.3g", t);  // CPU rates are a few GFLOP/s
  return buf;
}

void write_json(const std::string& path, const Options& opt, const kv_roofline& roof, const std::vector<Figure>& figs,
                const std::string& date, const std::string& command) {
  std::ofstream out(path);
  out << "{\n  \"record\": \"kvasir-perf/1\",\n  \"topic\": \"" << json_escape(opt.topic) << "\",\n"
      << "  \"date\": \"" << json_escape(date) << "\",\n"
      << "  \"git_commit\": \"" << json_escape(env_or("KVASIR_GIT_COMMIT", "unknown")) << "\",\n"
      << "  \"device\": \"" << json_escape(env_or("KVASIR_DEVICE_LINE", device_line(opt.backend))) << "\",\n"
      << "  \"library\": \"" << json_escape(kv_build_info()) << "\",\n"
      << "  \"command\": \"" << json_escape(command) << "\",\n"
      << "  \"configuration\": {\"backend\": \"" << (opt.backend == KV_BACKEND_CUDA ? "cuda" : "cpu")
      << "\", \"max_repetitions\": " << opt.reps << ", \"max_seconds_per_case\": " << num(opt.max_seconds)
      << ", \"timing\": \"device events around batches of back-to-back runs (about 1 ms each), per-run median\", \"base_seed\": " << base_seed() << "},\n"
      << "  \"ceilings\": {\"read_bytes_per_s\": " << num(roof.read_bytes_per_s)
      << ", \"copy_bytes_per_s\": " << num(roof.copy_bytes_per_s) << ", \"h2d_bytes_per_s\": "
      << num(roof.h2d_bytes_per_s > 0 ? roof.h2d_bytes_per_s : NAN) << ", \"d2h_bytes_per_s\": "
      << num(roof.d2h_bytes_per_s > 0 ? roof.d2h_bytes_per_s : NAN)
      << ", \"gemm_bf16_flops_per_s\": " << num(roof.gemm_bf16_flops_per_s > 0 ? roof.gemm_bf16_flops_per_s : NAN)
      << ", \"probe_buffer_bytes\": " << roof.buffer_bytes
      << ", \"probe_repetitions\": " << roof.repetitions << "},\n  \"figures\": [\n";
  for (size_t i = 0; i < figs.size(); ++i) {
    const Figure& f = figs[i];
    out << "    {\"op\": \"" << json_escape(f.op) << "\", \"params\": \"" << json_escape(f.params)
        << "\", \"baseline\": " << (f.baseline ? "true" : "false") << ", \"roofline\": \"" << roofline_name(f.roofline)
        << "\", \"bytes\": " << num(f.bytes) << ", \"runs_per_sample\": " << f.runs_per_sample << ", \"single_run_ms\": " << num(f.single_run_ms)
        << ", \"median_ms\": " << num(f.median_ms) << ", \"p10_ms\": "
        << num(f.p10_ms) << ", \"p90_ms\": " << num(f.p90_ms) << ", \"bytes_per_s\": " << num(f.bytes_per_s)
        << ", \"flops\": " << (f.flops > 0 ? num(f.flops) : "null")
        << ", \"flops_per_s\": " << (f.flops > 0 ? num(f.flops_per_s) : "null")
        << ", \"fraction_of_roofline\": " << num(f.fraction) << ", \"same_size_copy_bytes_per_s\": "
        << (f.same_size_copy_bytes_per_s > 0 ? num(f.same_size_copy_bytes_per_s) : "null") << ", \"goal\": " << (f.goal > 0 ? num(f.goal) : "null")
        << ", \"goal_flops_per_s\": " << (f.goal_flops_per_s > 0 ? num(f.goal_flops_per_s) : "null")
        << ", \"goal_met\": " << goal_met_json(f)
        << ", \"verified\": " << (opt.verify ? (f.verified ? "true" : "false") : "null");
    if (!f.verify_error.empty()) out << ", \"verify_error\": \"" << json_escape(f.verify_error) << "\"";
    out << ", \"samples_ms\": [";
    const size_t cap = std::min<size_t>(f.samples_ms.size(), 32);
    for (size_t j = 0; j < cap; ++j) out << (j ? ", " : "") << num(f.samples_ms[j]);
    out << "]}" << (i + 1 < figs.size() ? "," : "") << "\n";
  }
  out << "  ]\n}\n";
}

std::string gbs(double bytes_per_s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes_per_s / 1e9);
  return buf;
}

void write_markdown(std::ostream& out, const Options& opt, const kv_roofline& roof, const std::vector<Figure>& figs,
                    const std::string& date, const std::string& command) {
  out << "# Kernel benchmarks (" << opt.topic << "), " << date << "\n\n"
      << "- device: " << env_or("KVASIR_DEVICE_LINE", device_line(opt.backend)) << "\n"
      << "- commit: " << env_or("KVASIR_GIT_COMMIT", "unknown") << "; library: " << kv_build_info() << "\n"
      << "- command: `" << command << "`\n"
      << "- ceilings measured in the same run: read " << gbs(roof.read_bytes_per_s) << " GB/s, copy (read+write) "
      << gbs(roof.copy_bytes_per_s) << " GB/s";
  if (roof.h2d_bytes_per_s > 0)
    out << ", pinned H2D " << gbs(roof.h2d_bytes_per_s) << " GB/s, D2H " << gbs(roof.d2h_bytes_per_s) << " GB/s";
  if (roof.gemm_bf16_flops_per_s > 0) out << ", bf16 compute " << tflops(roof.gemm_bf16_flops_per_s) << " TFLOP/s";
  else out << "; no bf16 compute ceiling yet (compute ops report achieved TFLOP/s, no fraction)";
  out << "\n\nTimes are per run, the median over batches of back-to-back runs; \"alone\" is one run by itself, "
         "host launch overhead included. \"same-size copy\" is a device copy of the case's own bytes in the same "
         "run (the copy ceiling itself comes from a 2 GiB copy).\n\n"
      << "| op | params | median ms | alone ms | GB/s | TFLOP/s | roofline | % of roofline | same-size copy GB/s | goal | verified |\n"
      << "|---|---|---:|---:|---:|---:|---|---:|---:|---|---|\n";
  for (const Figure& f : figs) {
    char pct[16];
    if (std::isfinite(f.fraction)) std::snprintf(pct, sizeof pct, "%.1f%%", 100 * f.fraction);
    else std::snprintf(pct, sizeof pct, "n/a");
    std::string goal;
    if (f.goal > 0) goal = std::to_string(static_cast<int>(std::lround(f.goal * 100))) + "%";
    else if (f.goal_flops_per_s > 0) goal = tflops(f.goal_flops_per_s) + " TFLOP/s";
    if (has_goal(f)) goal += goal_met(f) ? " met" : " MISSED";
    out << "| " << f.op << (f.baseline ? " (baseline)" : "") << " | " << f.params << " | " << num(f.median_ms) << " | "
        << num(f.single_run_ms) << " | "
        << gbs(f.bytes_per_s) << " | " << (f.flops > 0 ? tflops(f.flops_per_s) : std::string()) << " | "
        << roofline_name(f.roofline) << " | " << pct << " | "
        << (f.same_size_copy_bytes_per_s > 0 ? gbs(f.same_size_copy_bytes_per_s) : std::string()) << " | " << goal << " | "
        << (opt.verify ? (f.verified ? "yes" : "NO: " + f.verify_error) : "skipped") << " |\n";
  }
}

int bench_main(int argc, char** argv) {
  Options opt;
  std::string command = "kvasir_bench_ops";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    command += " " + a;
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      command += std::string(" ") + argv[i + 1];
      return argv[++i];
    };
    if (a == "--backend") {
      if (!parse_backend(value(), &opt.backend)) return 2;
      opt.backend_given = true;
    } else if (a == "--op") {
      opt.op_filter = value();
    } else if (a == "--reps") {
      opt.reps = std::max(5, std::atoi(value().c_str()));
    } else if (a == "--max-seconds") {
      opt.max_seconds = std::atof(value().c_str());
    } else if (a == "--json") {
      opt.json_path = value();
    } else if (a == "--md") {
      opt.md_path = value();
    } else if (a == "--topic") {
      opt.topic = value();
    } else if (a == "--no-verify") {
      opt.verify = false;
    } else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of bench_ops.cc)\n", a.c_str());
      return 2;
    }
  }
  if (!opt.backend_given && unavailable_reason({KV_BACKEND_CUDA, KV_CPU_ISA_AVX2}).empty()) opt.backend = KV_BACKEND_CUDA;
  const std::string why = unavailable_reason({opt.backend, KV_CPU_ISA_AVX2});
  if (!why.empty()) {
    std::fprintf(stderr, "backend unavailable: %s\n", why.c_str());
    return 2;
  }
  command = env_or("KVASIR_COMMAND", command);
  char date_buf[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date_buf, sizeof date_buf, "%Y-%m-%d", std::gmtime(&now));
  const std::string date = env_or("KVASIR_DATE", date_buf);

  (void)base_seed();  // prints the seed before any output it explains
  kv_stream_t stream;
  KVT_CHECK(kv_stream_init(opt.backend, 0, &stream));
  kv_roofline roof;
  KVT_CHECK(kv_roofline_probe(stream, 0, 0, &roof));
  std::printf("ceilings: read %s GB/s, copy %s GB/s, h2d %s GB/s, d2h %s GB/s\n", gbs(roof.read_bytes_per_s).c_str(),
              gbs(roof.copy_bytes_per_s).c_str(), gbs(roof.h2d_bytes_per_s).c_str(), gbs(roof.d2h_bytes_per_s).c_str());
  std::vector<Figure> figs;
  int failures = 0;
  for (const CaseEntry& e : perf_cases()) {
    if (!opt.op_filter.empty() && e.name.find(opt.op_filter) == std::string::npos) continue;
    std::printf("%-100s ", e.name.c_str());
    std::fflush(stdout);
    Figure f = measure(e, stream, opt, roof);
    if (f.flops > 0)
      std::printf("%9.3f ms %8s TFLOP/s %8s GB/s%s\n", f.median_ms, tflops(f.flops_per_s).c_str(),
                  gbs(f.bytes_per_s).c_str(), opt.verify && !f.verified ? "  VERIFY FAILED" : "");
    else
      std::printf("%9.3f ms %8s GB/s %5.1f%% of %s%s\n", f.median_ms, gbs(f.bytes_per_s).c_str(), 100 * f.fraction,
                  roofline_name(f.roofline), opt.verify && !f.verified ? "  VERIFY FAILED" : "");
    if (opt.verify && !f.verified) ++failures;
    figs.push_back(std::move(f));
  }
  kv_stream_free(stream);
  if (!opt.json_path.empty()) write_json(opt.json_path, opt, roof, figs, date, command);
  if (!opt.md_path.empty()) {
    std::ofstream md(opt.md_path);
    write_markdown(md, opt, roof, figs, date, command);
  }
  write_markdown(std::cout, opt, roof, figs, date, command);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) { return kvt::bench_main(argc, argv); }
