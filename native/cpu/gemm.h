// Matrix products of the CPU model runtime: C[t][n] = sum_k A[t][k] * W[n][k] (W row-major as
// in checkpoints, [out_features][in_features]), W in fp32 or bf16, A and C in fp32.
//
// Every output is reduced in one fixed order: four eight-lane partial sums over k on the AVX2
// path, or k ascending on the scalar path, then a fixed combination. The order does not depend
// on how many rows A has or how work is split across threads, so a sequence gets bit-identical
// results whether it runs alone or batched with others.
#pragma once

#include <cstdint>

#include "kvasir/kvasir.h"

namespace kv::cpu {

// C [T][N] = A [T][K] * W^T, W [N][K] of w_dtype (F32 or BF16).
void matmul_wt(const float* a, int64_t t, int64_t k, const void* w, kv_dtype w_dtype, int64_t n, float* c);

// One row: out[n] = sum_k x[k] * W[n][k], the same arithmetic as one row of matmul_wt.
float dot_row(const float* x, const void* w_row, kv_dtype w_dtype, int64_t k);

}  // namespace kv::cpu
