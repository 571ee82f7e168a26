// Double-precision naive references and the error bounds the kernels are held to.
//
// Bounds are worst-case first-order bounds of fp32 arithmetic (unit roundoff u = 2^-24)
// derived below, per output element; bf16 outputs add their rounding, 2^-8 |o| (bf16 keeps
// 8 significant bits, so round-to-nearest is off by at most half an ulp = 2^-8 relative).
// A kernel passes when |out - ref| <= bound for every element; NaN never passes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvasir/kvasir.h"

namespace kvt {

constexpr double kU32 = 1.0 / (1 << 24);  // fp32 unit roundoff
constexpr double kUBf16 = 1.0 / (1 << 8);  // bf16 unit roundoff

struct StateRef {
  std::vector<double> o;          // [rows][d]
  std::vector<double> lse;        // [rows]
  std::vector<double> o_bound;    // [rows][d] allowed |error| of o
  std::vector<double> lse_bound;  // [rows]
};

// Merge of n states: o_states [n][rows][d], lse_states [n][rows] (values as the kernel reads them).
//
// Bound: with m = max_i l_i, w_i = exp(l_i - m). fl(l_i - m) is off by u|l_i - m|, and exp
// (expf on the GPU: <= 2 ulp <= 4u) adds 4u, so each weight is off by d_i <= u|l_i - m| + 4u.
// Accumulating n terms (sum of w, sum of w o) costs gamma_n ~ n u each; the final
// reciprocal-and-multiply 2u. Hence
//   |o~ - o| <= (2 max_i d_i + 2 (n + 2) u) * sum_i w_i |o_i| / sum_i w_i,
//   |lse~ - lse| <= max_i d_i + (n + 2) u + 4u (|lse| + |ln sum w|)   (log <= 2 ulp).
StateRef merge_reference(const std::vector<float>& o_states, const std::vector<float>& lse_states, int32_t n,
                         int64_t rows, int32_t d, kv_dtype out_dtype);

// Single-query attention: q [b][hq][d], k, v [b][len][hkv][d].
//
// Bound: a score s_i = scale q.k_i is a dot product of d terms, off by at most
// e_i = (gamma_d + 3u) scale sum_j |q_j k_ij| (gamma_d = d u / (1 - d u) for any summation
// order; 3u for the scale, log2(e) and the conversion to base 2 on the GPU). A weight
// p_i = exp(s_i - m) is off by 2 max_i e_i (scores and their max) plus the rounding of
// s_i - m (2u |s_i - m|) and of exp (4u). Online-softmax rescales multiply the output
// accumulator and the normalizer by the same factor, so the factor's error cancels; what
// remains is one rounding per rescale and per accumulation, at most (3 len + 8) u. Split-KV
// merges add the merge bound above with lse differences below the score range plus ln(len).
// Hence, with E = 2 max_i e_i + 2u max_i |s_i - m| + 4u + (3 len + 8) u
//                 + 2u (max s - min s + ln(len + 1) + 8) (the split merge),
//   |o~ - o| <= E * sum_i p_i |v_i|   and   |lse~ - lse| <= E + 4u |lse|.
StateRef attention_reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                             int32_t batch, int32_t hq, int32_t hkv, int32_t d, int64_t len, double scale,
                             kv_dtype out_dtype);

// Causal prefill attention: q [b][q_len][hq][d], k, v [b][kv_len][hkv][d]; query i sits at
// position kv_len - q_len + i and attends the n = kv_len - q_len + i + 1 keys [0, that position].
// Only the query tokens listed in `tokens` (b * q_len + i) are computed; result row
// t * hq + h is head h of tokens[t].
//
// Bound: the decode bound above with n keys, no split merge, and what tensor cores change:
//  - a score is accumulated in fp32 that may truncate instead of round (an error below one
//    ulp, 2u, per addition), so e_i = (gamma_2d + 3u) scale sum_j |q_j k_ij|;
//  - the output and normalizer accumulate n terms the same way, (6 n + 8) u instead of (3 n + 8) u;
//  - bf16: the probabilities are rounded to bf16 (relative error <= u_bf16) before they multiply
//    V, while the normalizer sums the unrounded fp32 probabilities, so o moves by at most
//    u_bf16 sum_i p_i |v_i| (counted for every bf16 run; a kernel that keeps P in fp32 is inside it).
// Hence, with E = 2 max_i e_i + 2u max_i |s_i - m| + 4u + (6 n + 8) u,
//   |o~ - o| <= (E + u_bf16 [bf16]) sum_i p_i |v_i| + u_bf16 |o| [bf16 output],
//   |lse~ - lse| <= E + 4u |lse|.
StateRef prefill_reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                           int32_t batch, int32_t q_len, int64_t kv_len, int32_t hq, int32_t hkv, int32_t d,
                           double scale, kv_dtype dtype, const std::vector<int64_t>& tokens);

struct CompareResult {
  bool ok = true;
  int64_t first_bad = -1;
  double worst_ratio = 0.0;  // max |err| / bound over elements (informative)
  std::string message;
};

// Compares got (as read back, NaN allowed) with ref within bound; names the first failure.
CompareResult compare(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& bound,
                      const char* what);

}  // namespace kvt
