// Device ceilings, measured with events on the caller's stream (median of the repetitions):
// read-only bandwidth (a streaming float4 reduction), device copy bandwidth (cudaMemcpyAsync
// device-to-device, bytes read + written), and pinned host<->device bandwidth. Buffers are
// filled with non-zero data first. The bf16 GEMM rate needs cuBLAS and stays 0 until the
// model runtime links it.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda/cublas_loader.h"
#include "cuda/cuda_common.cuh"

namespace kv::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void fill_kernel(float4* p, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = make_float4(i & 255, 1.f, 0.5f, -(i & 7));
}

__global__ void __launch_bounds__(kThreads) read_kernel(const float4* __restrict__ p, int64_t n, float* out) {
  float sum = 0.f;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    float4 a = __ldg(p + i), b = __ldg(p + i + stride), c = __ldg(p + i + 2 * stride), d = __ldg(p + i + 3 * stride);
    sum += (a.x + a.y + a.z + a.w) + (b.x + b.y + b.z + b.w) + (c.x + c.y + c.z + c.w) + (d.x + d.y + d.z + d.w);
  }
  for (; i < n; i += stride) {
    float4 a = __ldg(p + i);
    sum += a.x + a.y + a.z + a.w;
  }
  // The sum is written so the loads cannot be dropped; one value per thread is negligible traffic.
  if (sum == 1234.5f) out[0] = sum;
}

// Scratch that frees itself; it lives only for the probe, so it is not counted as live memory.
struct DeviceMem {
  void* p = nullptr;
  bool pinned = false;
  ~DeviceMem() {
    if (p) pinned ? (void)cudaFreeHost(p) : (void)cudaFree(p);
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

template <typename F>
double median_ms(Stream* s, int32_t reps, F&& work) {
  cudaEvent_t start, stop;
  KV_CUDA_CHECK(cudaEventCreate(&start));
  cudaError_t err = cudaEventCreate(&stop);
  if (err != cudaSuccess) {
    (void)cudaEventDestroy(start);
    throw_cuda(err, "cudaEventCreate", __FILE__, __LINE__);
  }
  std::vector<double> times;
  try {
    work();  // warm-up
    for (int32_t r = 0; r < reps; ++r) {
      KV_CUDA_CHECK(cudaEventRecord(start, s->stream));
      work();
      KV_CUDA_CHECK(cudaEventRecord(stop, s->stream));
      KV_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0.f;
      KV_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      times.push_back(ms);
    }
  } catch (...) {
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    throw;
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return median(times);
}

// The dense bf16 GEMM rate: cuBLAS C[n][n] = A B in bf16 with fp32 accumulation (the model's
// projections), n = 8192 (1.1 TFLOP a product, large enough for every SM and tile), median of
// reps. 0 when cuBLAS is absent (the CI machine): a figure that cannot be measured is not faked.
double gemm_bf16_rate(Stream* s, int32_t reps) {
  const blas::Api* api = nullptr;
  try {
    api = &blas::api();
  } catch (const kv::Error&) {
    return 0.0;
  }
  constexpr int n = 8192;
  const size_t elems = static_cast<size_t>(n) * n;
  DeviceMem a, b, c;
  KV_CUDA_CHECK(cudaMalloc(&a.p, elems * 2));
  KV_CUDA_CHECK(cudaMalloc(&b.p, elems * 2));
  KV_CUDA_CHECK(cudaMalloc(&c.p, elems * 4));
  // Finite inputs (zeros would let nothing special happen either, but stay honest): 0x3c00 is
  // bf16 0.0078125; any pattern of finite values costs the tensor cores the same.
  KV_CUDA_CHECK(cudaMemsetAsync(a.p, 0x3c, elems * 2, s->stream));
  KV_CUDA_CHECK(cudaMemsetAsync(b.p, 0x3c, elems * 2, s->stream));
  blas::Handle h = nullptr;
  blas::check(api->create(&h), "cublasCreate");
  double ms = 0.0;
  try {
    blas::check(api->set_stream(h, s->stream), "cublasSetStream");
    const float alpha = 1.f, beta = 0.f;
    ms = median_ms(s, reps, [&] {
      blas::check(api->gemm_ex(h, blas::kOpN, blas::kOpN, n, n, n, &alpha, a.p, blas::kR16BF, n, b.p, blas::kR16BF,
                               n, &beta, c.p, blas::kR32F, n, blas::kCompute32F, blas::kGemmDefault),
                  "cublasGemmEx");
    });
  } catch (...) {
    (void)api->destroy(h);
    throw;
  }
  (void)api->destroy(h);
  return 2.0 * n * static_cast<double>(n) * n / (ms * 1e-3);
}

}  // namespace

void roofline_probe(Stream* s, uint64_t buffer_bytes, int32_t reps, kv_roofline* out) {
  DeviceGuard guard(s->device);
  const uint64_t bytes = buffer_bytes / 64 * 64;
  const int64_t n4 = static_cast<int64_t>(bytes / sizeof(float4));
  // The host transfers use a quarter of the working set: pinning gigabytes takes seconds.
  const uint64_t host_bytes = std::max<uint64_t>(bytes / 4, 1u << 20) / 64 * 64;
  DeviceMem a, b, sink, host;
  KV_CUDA_CHECK(cudaMalloc(&a.p, bytes));
  KV_CUDA_CHECK(cudaMalloc(&b.p, bytes));
  KV_CUDA_CHECK(cudaMalloc(&sink.p, 64));
  KV_CUDA_CHECK(cudaHostAlloc(&host.p, host_bytes, cudaHostAllocDefault));
  host.pinned = true;
  const int sms = multiprocessor_count(s->device);
  fill_kernel<<<sms * 4, 256, 0, s->stream>>>(static_cast<float4*>(a.p), n4);
  KV_CUDA_CHECK_LAUNCH();
  KV_CUDA_CHECK(cudaMemcpyAsync(host.p, a.p, host_bytes, cudaMemcpyDeviceToHost, s->stream));

  const double read_ms = median_ms(s, reps, [&] {
    read_kernel<<<sms * 4, kThreads, 0, s->stream>>>(static_cast<const float4*>(a.p), n4, static_cast<float*>(sink.p));
    KV_CUDA_CHECK_LAUNCH();
  });
  const double copy_ms = median_ms(s, reps, [&] {
    KV_CUDA_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, s->stream));
  });
  const double h2d_ms = median_ms(s, reps, [&] {
    KV_CUDA_CHECK(cudaMemcpyAsync(b.p, host.p, host_bytes, cudaMemcpyHostToDevice, s->stream));
  });
  const double d2h_ms = median_ms(s, reps, [&] {
    KV_CUDA_CHECK(cudaMemcpyAsync(host.p, a.p, host_bytes, cudaMemcpyDeviceToHost, s->stream));
  });
  KV_CUDA_CHECK(cudaStreamSynchronize(s->stream));
  const double gemm = gemm_bf16_rate(s, reps);

  *out = kv_roofline{};
  out->read_bytes_per_s = static_cast<double>(bytes) / (read_ms * 1e-3);
  out->copy_bytes_per_s = 2.0 * static_cast<double>(bytes) / (copy_ms * 1e-3);
  out->h2d_bytes_per_s = static_cast<double>(host_bytes) / (h2d_ms * 1e-3);
  out->d2h_bytes_per_s = static_cast<double>(host_bytes) / (d2h_ms * 1e-3);
  out->gemm_bf16_flops_per_s = gemm;
  out->buffer_bytes = bytes;
  out->repetitions = reps;
}

}  // namespace kv::cuda
