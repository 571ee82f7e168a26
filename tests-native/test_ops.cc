// Test mode of the op case list: every case on every target (CPU scalar, CPU AVX2, CUDA)
// against the double-precision reference. A target that cannot run here is skipped with
// the reason (no CUDA device on CI; CUDA cases run on the GPU machine).
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>

#include "op_cases.h"
#include "test_util.h"

namespace kvt {
namespace {

struct OpParam {
  size_t index;
  Target target;
};

const std::vector<CaseEntry>& cases();

// Names a parameter in failure messages (instead of gtest's byte dump).
void PrintTo(const OpParam& p, std::ostream* os) { *os << cases()[p.index].name << " on " << p.target.name(); }

const std::vector<CaseEntry>& cases() {
  static const std::vector<CaseEntry> list = test_cases();
  return list;
}

class OpTest : public ::testing::TestWithParam<OpParam> {};

TEST_P(OpTest, MatchesReference) {
  const OpParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const CaseEntry& entry = cases()[p.index];
  const uint64_t seed = seed_for(entry.name + "/" + p.target.name());
  RecordProperty("seed", std::to_string(seed));
  StreamHolder stream(p.target);
  auto c = entry.make();
  c->prepare(stream.get(), p.target.backend, seed);
  c->run(stream.get());
  ASSERT_EQ(kv_stream_synchronize(stream.get()), KV_STATUS_OK) << kv_last_error();
  std::vector<std::string> failures = c->verify();
  for (const auto& f : failures) ADD_FAILURE() << entry.name << " on " << p.target.name() << " (seed " << seed << "): " << f;
  RecordProperty("worst_error_over_bound", std::to_string(c->worst_error_ratio()));
}

std::vector<OpParam> all_params() {
  std::vector<OpParam> params;
  for (size_t i = 0; i < cases().size(); ++i)
    for (const Target& t : all_targets()) params.push_back({i, t});
  return params;
}

std::string param_name(const ::testing::TestParamInfo<OpParam>& info) {
  std::string name = cases()[info.param.index].name + "_" + info.param.target.name();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cases, OpTest, ::testing::ValuesIn(all_params()), param_name);

}  // namespace
}  // namespace kvt
