#include "reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

namespace kvt {
namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

double gamma(double n) { return n * kU32 / (1.0 - n * kU32); }
}  // namespace

StateRef merge_reference(const std::vector<float>& o_states, const std::vector<float>& lse_states, int32_t n,
                         int64_t rows, int32_t d, kv_dtype out_dtype) {
  StateRef r;
  r.o.assign(rows * d, 0.0);
  r.lse.assign(rows, -kInf);
  r.o_bound.assign(rows * d, 0.0);
  r.lse_bound.assign(rows, 0.0);
  for (int64_t row = 0; row < rows; ++row) {
    double m = -kInf;
    for (int32_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(lse_states[i * rows + row]));
    if (m == -kInf) continue;  // all empty: o = 0, lse = -inf exactly
    double sum = 0.0, max_d = 0.0;
    std::vector<double> acc(d, 0.0), abs_acc(d, 0.0);
    for (int32_t i = 0; i < n; ++i) {
      double l = lse_states[i * rows + row];
      if (l == -kInf) continue;
      double w = std::exp(l - m);
      sum += w;
      max_d = std::max(max_d, kU32 * std::fabs(l - m) + 4 * kU32);
      const float* o = o_states.data() + (static_cast<int64_t>(i) * rows + row) * d;
      for (int32_t j = 0; j < d; ++j) {
        acc[j] += w * o[j];
        abs_acc[j] += w * std::fabs(o[j]);
      }
    }
    const double rel = 2 * max_d + 2 * (n + 2) * kU32;
    for (int32_t j = 0; j < d; ++j) {
      double o = acc[j] / sum;
      r.o[row * d + j] = o;
      r.o_bound[row * d + j] = rel * abs_acc[j] / sum + (out_dtype == KV_DTYPE_BF16 ? kUBf16 * std::fabs(o) : 0.0);
    }
    r.lse[row] = m + std::log(sum);
    r.lse_bound[row] = max_d + (n + 2) * kU32 + 4 * kU32 * (std::fabs(r.lse[row]) + std::fabs(std::log(sum)));
  }
  return r;
}

StateRef attention_reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                             int32_t batch, int32_t hq, int32_t hkv, int32_t d, int64_t len, double scale,
                             kv_dtype out_dtype) {
  StateRef r;
  const int64_t rows = static_cast<int64_t>(batch) * hq;
  r.o.assign(rows * d, 0.0);
  r.lse.assign(rows, -kInf);
  r.o_bound.assign(rows * d, 0.0);
  r.lse_bound.assign(rows, 0.0);
  const int32_t group = hq / hkv;
  std::vector<double> s(len), e(len);
  for (int32_t b = 0; b < batch; ++b) {
    for (int32_t h = 0; h < hq; ++h) {
      const int64_t row = static_cast<int64_t>(b) * hq + h;
      if (len == 0) continue;
      const float* qh = q.data() + row * d;
      const int32_t kvh = h / group;
      double m = -kInf, s_min = kInf, max_e = 0.0;
      for (int64_t t = 0; t < len; ++t) {
        const float* kt = k.data() + ((static_cast<int64_t>(b) * len + t) * hkv + kvh) * d;
        double dot = 0.0, abs_dot = 0.0;
        for (int32_t j = 0; j < d; ++j) {
          dot += static_cast<double>(qh[j]) * kt[j];
          abs_dot += std::fabs(static_cast<double>(qh[j]) * kt[j]);
        }
        s[t] = scale * dot;
        e[t] = (gamma(d) + 3 * kU32) * scale * abs_dot;
        m = std::max(m, s[t]);
        s_min = std::min(s_min, s[t]);
        max_e = std::max(max_e, e[t]);
      }
      double sum = 0.0;
      for (int64_t t = 0; t < len; ++t) sum += std::exp(s[t] - m);
      const double range = m - s_min;
      const double E = 2 * max_e + 2 * kU32 * range + 4 * kU32 + (3.0 * len + 8) * kU32 +
                       2 * kU32 * (range + std::log(len + 1.0) + 8);
      for (int32_t j = 0; j < d; ++j) {
        double acc = 0.0, abs_acc = 0.0;
        for (int64_t t = 0; t < len; ++t) {
          double p = std::exp(s[t] - m) / sum;
          double vj = v[((static_cast<int64_t>(b) * len + t) * hkv + kvh) * d + j];
          acc += p * vj;
          abs_acc += p * std::fabs(vj);
        }
        r.o[row * d + j] = acc;
        r.o_bound[row * d + j] = E * abs_acc + (out_dtype == KV_DTYPE_BF16 ? kUBf16 * std::fabs(acc) : 0.0);
      }
      r.lse[row] = m + std::log(sum);
      r.lse_bound[row] = E + 4 * kU32 * std::fabs(r.lse[row]);
    }
  }
  return r;
}

StateRef prefill_reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                           int32_t batch, int32_t q_len, int64_t kv_len, int32_t hq, int32_t hkv, int32_t d,
                           double scale, kv_dtype dtype, const std::vector<int64_t>& tokens) {
  (void)batch;
  StateRef r;
  const int64_t rows = static_cast<int64_t>(tokens.size()) * hq;
  r.o.assign(rows * d, 0.0);
  r.lse.assign(rows, -kInf);
  r.o_bound.assign(rows * d, 0.0);
  r.lse_bound.assign(rows, 0.0);
  const int32_t group = hq / hkv;
  const double u_p = dtype == KV_DTYPE_BF16 ? kUBf16 : 0.0;
  std::vector<double> s, p, acc(d), abs_acc(d);
  for (size_t ti = 0; ti < tokens.size(); ++ti) {
    const int64_t token = tokens[ti];
    const int64_t b = token / q_len, i = token % q_len;
    const int64_t n = kv_len - q_len + i + 1;
    s.resize(n);
    p.resize(n);
    for (int32_t h = 0; h < hq; ++h) {
      const int64_t row = static_cast<int64_t>(ti) * hq + h;
      const float* qh = q.data() + (token * hq + h) * d;
      const int32_t kvh = h / group;
      double m = -kInf, s_min = kInf, max_e = 0.0;
      for (int64_t t = 0; t < n; ++t) {
        const float* kt = k.data() + ((b * kv_len + t) * hkv + kvh) * d;
        double dot = 0.0, abs_dot = 0.0;
        for (int32_t j = 0; j < d; ++j) {
          dot += static_cast<double>(qh[j]) * kt[j];
          abs_dot += std::fabs(static_cast<double>(qh[j]) * kt[j]);
        }
        s[t] = scale * dot;
        max_e = std::max(max_e, (gamma(2.0 * d) + 3 * kU32) * scale * abs_dot);
        m = std::max(m, s[t]);
        s_min = std::min(s_min, s[t]);
      }
      double sum = 0.0;
      for (int64_t t = 0; t < n; ++t) sum += (p[t] = std::exp(s[t] - m));
      std::fill(acc.begin(), acc.end(), 0.0);
      std::fill(abs_acc.begin(), abs_acc.end(), 0.0);
      for (int64_t t = 0; t < n; ++t) {
        const double pt = p[t] / sum;
        const float* vt = v.data() + ((b * kv_len + t) * hkv + kvh) * d;
        for (int32_t j = 0; j < d; ++j) {
          acc[j] += pt * vt[j];
          abs_acc[j] += pt * std::fabs(static_cast<double>(vt[j]));
        }
      }
      const double E = 2 * max_e + 2 * kU32 * (m - s_min) + 4 * kU32 + (6.0 * n + 8) * kU32;
      for (int32_t j = 0; j < d; ++j) {
        r.o[row * d + j] = acc[j];
        r.o_bound[row * d + j] = (E + u_p) * abs_acc[j] + (dtype == KV_DTYPE_BF16 ? kUBf16 * std::fabs(acc[j]) : 0.0);
      }
      r.lse[row] = m + std::log(sum);
      r.lse_bound[row] = E + 4 * kU32 * std::fabs(r.lse[row]);
    }
  }
  return r;
}

CompareResult compare(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& bound,
                      const char* what) {
  CompareResult c;
  if (got.size() != ref.size()) {
    c.ok = false;
    c.message = std::string(what) + ": size " + std::to_string(got.size()) + " != " + std::to_string(ref.size());
    return c;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    bool ok;
    double err;
    if (std::isinf(r)) {  // -inf lse of an empty state must be reproduced exactly
      ok = g == r;
      err = ok ? 0.0 : kInf;
    } else {
      err = std::fabs(g - r);
      ok = std::isfinite(g) && err <= bound[i];
    }
    if (bound[i] > 0) c.worst_ratio = std::max(c.worst_ratio, err / bound[i]);
    if (!ok && c.ok) {
      c.ok = false;
      c.first_bad = static_cast<int64_t>(i);
      std::ostringstream msg;
      msg.precision(9);
      msg << what << "[" << i << "] = " << g << ", reference " << r << ", |error| " << err << " > bound " << bound[i];
      c.message = msg.str();
    }
  }
  return c;
}

}  // namespace kvt
