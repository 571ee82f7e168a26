// Sampling of the next token from one row of logits, in Hugging Face generate's order:
// repetition penalty, then temperature, top-k, top-p and min-p, then one draw.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "model/model_impl.h"
#include "model/philox.h"

namespace kv::model {
namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int32_t argmax(const float* logits, int32_t vocab) {
  int32_t best = 0;
  for (int32_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;  // strict: the lowest id wins ties
  return best;
}
}  // namespace

int32_t sample_cpu(float* logits, int32_t vocab, float temperature, int32_t top_k, float top_p, float min_p,
                   float repetition_penalty, const int32_t* history, int64_t history_len, uint64_t seed,
                   uint64_t request_id, uint64_t position) {
  if (repetition_penalty != 1.f) {
    // Each token seen in the sequence once: positive logits divided, negative multiplied.
    std::vector<char> seen(vocab, 0);
    for (int64_t i = 0; i < history_len; ++i) seen[history[i]] = 1;
    for (int32_t i = 0; i < vocab; ++i)
      if (seen[i]) logits[i] = logits[i] > 0 ? logits[i] / repetition_penalty : logits[i] * repetition_penalty;
  }
  if (temperature == 0.f) return argmax(logits, vocab);
  for (int32_t i = 0; i < vocab; ++i) logits[i] /= temperature;

  if (top_k > 0 && top_k < vocab) {
    // Keep every token at least as likely as the k-th: ties at the threshold survive.
    std::vector<float> sorted(logits, logits + vocab);
    std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<float>());
    const float threshold = sorted[top_k - 1];
    for (int32_t i = 0; i < vocab; ++i)
      if (logits[i] < threshold) logits[i] = kNegInf;
  }
  const float max_logit = *std::max_element(logits, logits + vocab);
  std::vector<double> p(vocab);
  double total = 0.0;
  for (int32_t i = 0; i < vocab; ++i) total += p[i] = logits[i] == kNegInf ? 0.0 : std::exp(static_cast<double>(logits[i] - max_logit));
  if (top_p < 1.f) {
    // Ascending by probability, the low tail whose cumulative mass is at most 1 - top_p goes;
    // the token that crosses the line and every token as likely as it stay (ties at the
    // threshold are kept whole, so the rule is a threshold tau: the CUDA sampler finds the same
    // tau by bisection).
    std::vector<double> sorted(p);
    std::sort(sorted.begin(), sorted.end());
    const double limit = (1.0 - top_p) * total;
    double cumulative = 0.0, tau = sorted.back();
    for (double q : sorted) {
      cumulative += q;
      if (cumulative > limit) {
        tau = q;
        break;
      }
    }
    for (double& q : p)
      if (q < tau) q = 0.0;
    total = std::accumulate(p.begin(), p.end(), 0.0);
  }
  if (min_p > 0.f) {
    // The most likely token has weight exp(0) = 1 after the shift by max_logit.
    for (int32_t i = 0; i < vocab; ++i)
      if (p[i] < static_cast<double>(min_p)) p[i] = 0.0;
    total = std::accumulate(p.begin(), p.end(), 0.0);
  }
  // One uniform per (seed, request, position); inverse CDF over ids in ascending order.
  const double target = static_cast<double>(philox::sample_uniform(seed, request_id, position)) * total;
  double cumulative = 0.0;
  int32_t last_positive = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    if (p[i] <= 0.0) continue;
    last_positive = i;
    cumulative += p[i];
    if (cumulative > target) return i;
  }
  return last_positive;  // rounding left the target just past the end
}

}  // namespace kv::model
