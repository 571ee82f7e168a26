#include "cuda/cublas_loader.h"

#include <dlfcn.h>

#include <initializer_list>
#include <mutex>

#include "core/error.h"

namespace kv::cuda::blas {
namespace {

template <typename F>
void bind(void* lib, const char* name, F* out, const char* file) {
  void* symbol = dlsym(lib, name);
  if (!symbol) fail(KV_STATUS_UNSUPPORTED, file, " has no symbol ", name, " (cuBLAS 12 or 13 expected)");
  *out = reinterpret_cast<F>(symbol);
}

// The first of the library names that dlopen finds (its name in *file), or null.
void* open_first(std::initializer_list<const char*> names, const char** file) {
  for (const char* name : names) {
    if (void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) {
      *file = name;
      return lib;
    }
  }
  return nullptr;
}

}  // namespace

const Api& api() {
  static std::once_flag once;
  static Api loaded{};
  static std::string error;
  std::call_once(once, [] {
    const char* file = nullptr;
    void* lib = open_first({"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, &file);
    if (!lib) {
      error = std::string("cuBLAS is not installed (tried libcublas.so.13, .12): ") + dlerror() +
              "; the CUDA model runtime needs it (add its directory, e.g. /usr/local/cuda/lib64, to LD_LIBRARY_PATH)";
      return;
    }
    try {
      bind(lib, "cublasCreate_v2", &loaded.create, file);
      bind(lib, "cublasDestroy_v2", &loaded.destroy, file);
      bind(lib, "cublasSetStream_v2", &loaded.set_stream, file);
      bind(lib, "cublasSetMathMode", &loaded.set_math_mode, file);
      bind(lib, "cublasSetWorkspace_v2", &loaded.set_workspace, file);
      bind(lib, "cublasGemmEx", &loaded.gemm_ex, file);
    } catch (const Error& e) {
      error = e.what();
      loaded = Api{};
    }
  });
  if (!loaded.gemm_ex) fail(KV_STATUS_UNSUPPORTED, error);
  return loaded;
}

const LtApi* lt_api() {
  static std::once_flag once;
  static LtApi loaded{};
  static bool ok = false;
  std::call_once(once, [] {
    const char* file = nullptr;
    void* lib = open_first({"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}, &file);
    if (!lib) return;
    try {
      bind(lib, "cublasLtCreate", &loaded.create, file);
      bind(lib, "cublasLtDestroy", &loaded.destroy, file);
      bind(lib, "cublasLtMatmulDescCreate", &loaded.desc_create, file);
      bind(lib, "cublasLtMatmulDescDestroy", &loaded.desc_destroy, file);
      bind(lib, "cublasLtMatmulDescSetAttribute", &loaded.desc_set, file);
      bind(lib, "cublasLtMatrixLayoutCreate", &loaded.layout_create, file);
      bind(lib, "cublasLtMatrixLayoutDestroy", &loaded.layout_destroy, file);
      bind(lib, "cublasLtMatmulPreferenceCreate", &loaded.pref_create, file);
      bind(lib, "cublasLtMatmulPreferenceDestroy", &loaded.pref_destroy, file);
      bind(lib, "cublasLtMatmulPreferenceSetAttribute", &loaded.pref_set, file);
      bind(lib, "cublasLtMatmulAlgoGetHeuristic", &loaded.heuristic, file);
      bind(lib, "cublasLtMatmul", &loaded.matmul, file);
      ok = true;
    } catch (const Error&) {
      loaded = LtApi{};
    }
  });
  return ok ? &loaded : nullptr;
}

void check(Status status, const char* call) {
  if (status != 0) fail(KV_STATUS_DEVICE_ERROR, call, " failed with cublasStatus_t ", status);
}

}  // namespace kv::cuda::blas
