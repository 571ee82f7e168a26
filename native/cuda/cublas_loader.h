// cuBLAS, loaded at run time. The CI machine's CUDA toolkit ships no cuBLAS headers or
// libraries, and the GPU machine has libcublas.so.13, so Kvasir declares the few entry points
// and constants it uses (values from cublas_api.h of CUDA 13) and dlopens the library on first
// use, with a clear error when it is missing. Everything else builds and runs without it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kv::cuda::blas {

using Handle = void*;       // cublasHandle_t
using Status = int;         // cublasStatus_t, 0 = success

constexpr int kOpN = 0;              // CUBLAS_OP_N
constexpr int kOpT = 1;              // CUBLAS_OP_T
constexpr int kR32F = 0;             // CUDA_R_32F
constexpr int kR16BF = 14;           // CUDA_R_16BF
constexpr int kCompute32F = 68;      // CUBLAS_COMPUTE_32F: fp32 accumulation, no TF32
constexpr int kGemmDefault = -1;     // CUBLAS_GEMM_DEFAULT
constexpr int kPedanticMath = 2;     // CUBLAS_PEDANTIC_MATH: no reduced-precision shortcuts

struct Api {
  Status (*create)(Handle*);
  Status (*destroy)(Handle);
  Status (*set_stream)(Handle, void* stream);
  Status (*set_math_mode)(Handle, int mode);
  Status (*set_workspace)(Handle, void* workspace, size_t bytes);
  Status (*gemm_ex)(Handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a,
                    int a_type, int lda, const void* b, int b_type, int ldb, const void* beta, void* c, int c_type,
                    int ldc, int compute_type, int algo);
};

// The loaded API; throws kv::Error (KV_STATUS_UNSUPPORTED) naming the library when it is absent.
const Api& api();

// cuBLASLt, for matrix products whose algorithm is chosen once per shape and reused: cublasGemmEx
// re-runs its heuristics on every call, which costs up to milliseconds of host time per call for
// some prefill shapes (measured on the H200, docs/perf). Values from cublasLt.h of CUDA 13.
constexpr int kLtDescTransA = 3;          // CUBLASLT_MATMUL_DESC_TRANSA
constexpr int kLtDescTransB = 4;          // CUBLASLT_MATMUL_DESC_TRANSB
constexpr int kLtPrefMaxWorkspace = 1;    // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES

struct LtAlgo {
  uint64_t data[8];
};
struct LtHeuristicResult {  // cublasLtMatmulHeuristicResult_t
  LtAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

struct LtApi {
  Status (*create)(Handle*);
  Status (*destroy)(Handle);
  Status (*desc_create)(void** desc, int compute_type, int scale_type);
  Status (*desc_destroy)(void* desc);
  Status (*desc_set)(void* desc, int attribute, const void* buf, size_t bytes);
  Status (*layout_create)(void** layout, int type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layout_destroy)(void* layout);
  Status (*pref_create)(void** pref);
  Status (*pref_destroy)(void* pref);
  Status (*pref_set)(void* pref, int attribute, const void* buf, size_t bytes);
  Status (*heuristic)(Handle, void* desc, void* a, void* b, void* c, void* d, void* pref, int requested,
                      LtHeuristicResult* results, int* returned);
  Status (*matmul)(Handle, void* desc, const void* alpha, const void* a, void* a_layout, const void* b, void* b_layout,
                   const void* beta, const void* c, void* c_layout, void* d, void* d_layout, const LtAlgo* algo,
                   void* workspace, size_t workspace_bytes, void* stream);
};

// The loaded cuBLASLt, or nullptr when libcublasLt is absent (callers fall back to cublasGemmEx).
const LtApi* lt_api();

// Throws kv::Error naming the call when status is not success.
void check(Status status, const char* call);

}  // namespace kv::cuda::blas
