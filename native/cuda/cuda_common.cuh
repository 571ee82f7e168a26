// Shared by the CUDA sources: error checks that throw kv::Error, a device guard, the stream
// record, bf16 conversions identical to the host's, and 16-byte vector access.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "core/error.h"
#include "core/op_args.h"
#include "cuda/cuda_backend.h"

namespace kv::cuda {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Arrival counters each stream owns: kernels whose blocks hand work to the last one to arrive
// (split-KV decode merging its splits in the last split block) count arrivals here, one
// counter per block row (a grid's y extent is at most 65535). Zeroed at stream creation; the
// last arriving block resets its counter, so they are zero between operations of the stream
// (and across replays of a CUDA graph captured on it). Kept in the stream rather than in the
// caller's workspace, which is scratch (any contents on entry, shared with other ops).
constexpr int32_t kArrivalCounters = 65536;

struct Stream {
  cudaStream_t stream;
  int32_t device;
  DeviceErrorRecord* error_record;  // device-visible address of the pinned record
  uint32_t* arrivals;               // [kArrivalCounters] device memory, zero between operations
};

// Records the first device error of a stream (later ones are dropped): a kernel that finds a bad
// index in device memory reports it here, and the next synchronize turns it into a kv::Error.
__device__ __forceinline__ void record_device_error(DeviceErrorRecord* err, int32_t code, int64_t entry, int64_t value,
                                                    int64_t limit) {
  if (atomicCAS(&err->code, 0, code) == 0) {
    err->entry = entry;
    err->value = value;
    err->limit = limit;
    __threadfence_system();
  }
}

[[noreturn]] void throw_cuda(cudaError_t err, const char* call, const char* file, int line);

#define KV_CUDA_CHECK(call)                                                     \
  do {                                                                          \
    cudaError_t kv_err_ = (call);                                               \
    if (kv_err_ != cudaSuccess) kv::cuda::throw_cuda(kv_err_, #call, __FILE__, __LINE__); \
  } while (0)

// Checks the launch that just happened (bad configuration, missing kernel image).
#define KV_CUDA_CHECK_LAUNCH() KV_CUDA_CHECK(cudaGetLastError())

// Makes `device` current for the scope and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int32_t device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  bool changed_ = false;
};

// Multiprocessor count of a device (cached).
int32_t multiprocessor_count(int32_t device);

// --- element access, the same rounding as native/cpu/bf16.h -------------------------------

__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// Eight consecutive elements converted to or from fp32: two float4 or one 16-byte bf16 vector.
// The address must be 16-byte aligned.
template <typename T>
struct Pack8;

// Raw holds the loaded bytes; unpack() converts them where they are used, so a kernel can
// keep bf16 data packed in registers (half the registers of fp32 copies).
template <>
struct Pack8<float> {
  struct Raw {
    float4 a, b;
  };
  __device__ __forceinline__ static Raw load_raw(const float* p) {
    return Raw{reinterpret_cast<const float4*>(p)[0], reinterpret_cast<const float4*>(p)[1]};
  }
  __device__ __forceinline__ static float unpack(const Raw& r, int j) {
    switch (j) {
      case 0: return r.a.x;
      case 1: return r.a.y;
      case 2: return r.a.z;
      case 3: return r.a.w;
      case 4: return r.b.x;
      case 5: return r.b.y;
      case 6: return r.b.z;
      default: return r.b.w;
    }
  }
  __device__ __forceinline__ static void load(const float* p, float* out) {
    Raw r = load_raw(p);
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = unpack(r, j);
  }
  __device__ __forceinline__ static void store(float* p, const float* in) {
    reinterpret_cast<float4*>(p)[0] = make_float4(in[0], in[1], in[2], in[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(in[4], in[5], in[6], in[7]);
  }
};

template <>
struct Pack8<uint16_t> {
  using Raw = uint4;
  __device__ __forceinline__ static Raw load_raw(const uint16_t* p) { return *reinterpret_cast<const uint4*>(p); }
  // Element j (a compile-time constant after unrolling): even elements are the low halves.
  __device__ __forceinline__ static float unpack(const Raw& r, int j) {
    const uint32_t w = (j >> 1) == 0 ? r.x : (j >> 1) == 1 ? r.y : (j >> 1) == 2 ? r.z : r.w;
    return __uint_as_float((j & 1) ? (w & 0xffff0000u) : (w << 16));
  }
  __device__ __forceinline__ static void load(const uint16_t* p, float* out) {
    Raw r = load_raw(p);
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = unpack(r, j);
  }
  __device__ __forceinline__ static void store(uint16_t* p, const float* in) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
      w[i] = static_cast<uint32_t>(float_to_bf16_bits(in[2 * i])) |
             (static_cast<uint32_t>(float_to_bf16_bits(in[2 * i + 1])) << 16);
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  }
};

__device__ __forceinline__ float load_scalar(const float* p) { return *p; }
__device__ __forceinline__ float load_scalar(const uint16_t* p) { return bf16_bits_to_float(*p); }
__device__ __forceinline__ void store_scalar(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_scalar(uint16_t* p, float x) { *p = float_to_bf16_bits(x); }

}  // namespace kv::cuda
