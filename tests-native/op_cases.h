// The op case list (STYLE.md rule 2): every operation is registered here once, with its
// parameters, its reference check, the bytes it must move and the roofline it is judged
// against. test_ops.cc runs the test list on every target against the double-precision
// reference; bench_ops.cc runs the perf list against the roofline measured in the same run.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvasir/kvasir.h"

namespace kvt {

// The ceiling a case's figure is divided by (DESIGN.md "Rooflines").
// kCompute is the dense bf16 tensor rate (kv_roofline.gemm_bf16_flops_per_s); while the probe
// does not measure it (0), compute-bound cases report achieved FLOP/s without a fraction.
enum class Roofline { kRead, kCopy, kHostToDevice, kDeviceToHost, kCompute };
const char* roofline_name(Roofline r);

class OpCase {
 public:
  virtual ~OpCase() = default;
  virtual std::string op() const = 0;
  virtual std::string params() const = 0;
  std::string name() const { return op() + "(" + params() + ")"; }

  // Allocates and fills inputs on the stream's backend from `seed` and poisons the outputs.
  virtual void prepare(kv_stream_t stream, kv_backend backend, uint64_t seed) = 0;
  // Enqueues the operation once (asynchronous on CUDA).
  virtual void run(kv_stream_t stream) = 0;
  // Reads the outputs back and checks them against the reference; returns failures (empty:
  // pass). Also checks canaries around every output and that every output was written.
  virtual std::vector<std::string> verify() = 0;
  // Largest |error| / bound seen by the last verify() (informative).
  virtual double worst_error_ratio() const { return 0.0; }

  // The fewest bytes one run must move (each input read once, each output written once),
  // counted the way its roofline counts them.
  virtual double bytes_moved() const = 0;
  virtual Roofline roofline() const = 0;
  // Fraction of the roofline the issue sets as the goal, 0 when none.
  virtual double goal() const { return 0.0; }
  // Floating-point operations of one run (0: not a compute op) and an absolute goal in FLOP/s
  // (0: none), for ops judged by arithmetic rate.
  virtual double flops() const { return 0.0; }
  virtual double goal_flops_per_s() const { return 0.0; }
  // Some cases are baselines measured beside a kernel, not kernels themselves.
  virtual bool is_baseline() const { return false; }
};

struct CaseEntry {
  std::string name;
  std::function<std::unique_ptr<OpCase>()> make;
};

// Small and odd shapes: every dtype, head dim, GQA shape, empty states, split-KV paths.
std::vector<CaseEntry> test_cases();
// Performance shapes (large), including the acceptance benchmarks.
std::vector<CaseEntry> perf_cases();

}  // namespace kvt
