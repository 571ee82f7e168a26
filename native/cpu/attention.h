// The CPU attention inner loop, shared by the dense decode op and the model runtime.
#pragma once

#include <cstdint>
#include <vector>

namespace kv::cpu {

// Attention state of g query heads over tokens [t_begin, t_end) of one KV head.
//   q       [g][d] fp32 (already converted)
//   k, v    row t at k + t * row_stride, d channels, of T (float or uint16_t bf16)
//   o_out   [g][d] normalized output; lse_out [g] natural-log lse (the empty state: 0, -inf)
// K and V rows are read once for the whole group. Tokens are scored in blocks of 64 in
// ascending order with one online-softmax rescale per block, so the arithmetic depends only
// on the token range, never on how a caller batches or splits work around it.
template <typename T>
void attend_rows(const float* q, const T* k, const T* v, int64_t row_stride, int32_t g, int32_t d, float sm_scale,
                 int64_t t_begin, int64_t t_end, float* o_out, float* lse_out, bool avx2, std::vector<float>& scratch);

}  // namespace kv::cpu
