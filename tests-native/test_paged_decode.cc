// Paged KV append and paged decode (kv_paged_append_async, kv_paged_decode_async) on every
// target (CPU scalar, CPU AVX2, CUDA; the CUDA cases are named *cuda* and skip without a
// device), over the public C ABI only.
//
//  - Decode is checked against the double-precision reference (reference.h,
//    attention_reference) over exactly the tokens each (sequence, KV head) attends, with its
//    derived error bound; and, without a selection, against the dense
//    kv_attention_decode_async on the same K/V gathered contiguous (each within the bound, so
//    the two differ by at most twice it). Pages are scattered by a random permutation; pool
//    pages no table names, the unused tail of a partial last page and table entries past
//    ceil(kv_len / P) hold NaN or invalid ids, so reading any of them fails the check.
//    Outputs are poisoned with NaN before the call and must all be written; canaries guard
//    every buffer.
//  - CUDA has two decode kernels (paged_decode.cu): cases named *_tensorcore / *_cudacore
//    force one (KVASIR_PAGED_DECODE_KERNEL) and run on CUDA only; the others take the
//    default (tensor cores for bf16 with head_dim 64 and 128). Both are held to the same bound.
//  - Append is checked bit-exact against a naive scatter of the same rows.
//  - Bad arguments fail with a status and a message naming the argument; bad indices in
//    stream memory fail the call on the CPU and the next kv_stream_synchronize on CUDA.
// Inputs are fresh random values from a seed logged per test (replay: KVASIR_TEST_SEED).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "reference.h"
#include "test_util.h"

namespace kvt {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int32_t kBadPage = 0x7fffffff;  // table entries that must never be read

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::unique_ptr<GuardedBuffer> upload_bytes(kv_stream_t st, kv_backend be, const void* data, size_t bytes) {
  auto buf = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, std::max<size_t>(bytes, 16));
  if (bytes) buf->upload(data, bytes);
  return buf;
}
template <typename T>
std::unique_ptr<GuardedBuffer> upload_vec(kv_stream_t st, kv_backend be, const std::vector<T>& v) {
  return upload_bytes(st, be, v.data(), v.size() * sizeof(T));
}
std::unique_ptr<GuardedBuffer> upload_typed(kv_stream_t st, kv_backend be, const TypedData& t) {
  return upload_vec(st, be, t.raw());
}
std::vector<float> read_typed(const GuardedBuffer& buf, kv_dtype dtype, size_t count) {
  std::vector<unsigned char> raw(count * dtype_bytes(dtype));
  buf.download(raw.data(), raw.size());
  return TypedData::from_raw(dtype, raw).values;
}
void check_all_written(const GuardedBuffer& buf, const std::vector<float>& values, const char* what,
                       std::vector<std::string>& failures) {
  if (!buf.guards_intact()) failures.push_back(std::string(what) + ": write outside the buffer (canary changed)");
  for (size_t i = 0; i < values.size(); ++i)
    if (std::isnan(values[i])) {
      failures.push_back(std::string(what) + "[" + std::to_string(i) + "] was not written (still NaN)");
      return;
    }
}

// ============================================================================ decode

enum class Layout { kHeadMajor, kTokenMajor, kSingleHead };  // kSingleHead: per-head tables
enum class Select { kNone, kSubset, kAll };
enum class Ws { kNone, kFull, kSmall };
// The CUDA decode kernel a case asks for (KVASIR_PAGED_DECODE_KERNEL, see paged_decode.cu);
// cases that force one run on CUDA only (the CPU ignores the variable).
enum class Kernel { kAuto, kCudaCore, kTensorCore };

const char* kernel_env_value(Kernel k) {
  return k == Kernel::kCudaCore ? "cuda-core" : k == Kernel::kTensorCore ? "tensor-core" : "auto";
}

// Sets KVASIR_PAGED_DECODE_KERNEL for its lifetime (each gtest case runs in its own process
// under ctest; the previous value is restored for runs of the whole binary).
class KernelEnv {
 public:
  explicit KernelEnv(Kernel k) {
    const char* old = std::getenv(kName);
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv(kName, kernel_env_value(k), 1);
  }
  ~KernelEnv() {
    if (had_) setenv(kName, old_.c_str(), 1);
    else unsetenv(kName);
  }
  KernelEnv(const KernelEnv&) = delete;
  KernelEnv& operator=(const KernelEnv&) = delete;

 private:
  static constexpr const char* kName = "KVASIR_PAGED_DECODE_KERNEL";
  bool had_ = false;
  std::string old_;
};

struct DecodeSpec {
  kv_dtype dtype;
  int32_t hq, hkv, d, page_tokens;
  std::vector<int32_t> lens;
  Layout layout = Layout::kHeadMajor;
  Select select = Select::kNone;
  Ws ws = Ws::kFull;
  float scale_mult = 1.f;
  Kernel kernel = Kernel::kAuto;
  // Calls on the same workspace and stream, outputs poisoned between them: split-KV merges in
  // the last split block to arrive (paged_decode.cu), whose arrival counters must be back at
  // zero for the next call.
  int32_t repeats = 1;

  std::string name() const {
    std::ostringstream s;
    s << dtype_name(dtype) << "_hq" << hq << "_hkv" << hkv << "_d" << d << "_P" << page_tokens << "_lens";
    for (int32_t l : lens) s << "_" << l;
    s << (layout == Layout::kHeadMajor ? "_headmajor" : layout == Layout::kTokenMajor ? "_tokenmajor" : "_perhead");
    s << (select == Select::kNone ? "" : select == Select::kSubset ? "_select" : "_selectall");
    s << (ws == Ws::kNone ? "_wsnone" : ws == Ws::kFull ? "" : "_wssmall");
    if (scale_mult != 1.f) s << "_scale" << scale_mult;
    s << (kernel == Kernel::kAuto ? "" : kernel == Kernel::kCudaCore ? "_cudacore" : "_tensorcore");
    if (repeats > 1) s << "_x" << repeats;
    return s.str();
  }
};

std::vector<DecodeSpec> decode_specs() {
  std::vector<DecodeSpec> v;
  const kv_dtype types[] = {KV_DTYPE_F32, KV_DTYPE_BF16};
  const int32_t groups[][2] = {{4, 4}, {8, 2}, {16, 2}};  // GQA ratios 1, 4, 8
  for (kv_dtype t : types)
    for (int32_t d : {64, 128, 256})
      for (auto& g : groups) v.push_back({t, g[0], g[1], d, 16, {0, 1, 16, 17, 45, 100}});
  for (kv_dtype t : types) {
    v.push_back({t, 8, 2, 128, 1, {1, 5, 13, 0}});
    v.push_back({t, 8, 2, 128, 64, {0, 64, 65, 200, 7}});
    v.push_back({t, 8, 2, 128, 16, {0, 20, 47}, Layout::kSingleHead});
    v.push_back({t, 8, 2, 128, 16, {0, 20, 47, 96}, Layout::kSingleHead, Select::kSubset});
    v.push_back({t, 32, 8, 128, 16, {100, 37, 0, 16}, Layout::kHeadMajor, Select::kSubset});
    v.push_back({t, 32, 8, 128, 16, {100, 37, 0, 16}, Layout::kHeadMajor, Select::kAll});
    // Split-KV shapes: one long sequence, every workspace size; mixed lengths.
    v.push_back({t, 32, 8, 128, 16, {4099}, Layout::kHeadMajor, Select::kNone, Ws::kFull});
    v.push_back({t, 32, 8, 128, 16, {2500, 1, 0}, Layout::kHeadMajor, Select::kNone, Ws::kFull, 4.f});
  }
  v.push_back({KV_DTYPE_BF16, 8, 2, 128, 16, {33, 7}, Layout::kTokenMajor});
  v.push_back({KV_DTYPE_BF16, 4, 1, 64, 1, {9, 30}, Layout::kSingleHead, Select::kSubset});
  v.push_back({KV_DTYPE_BF16, 16, 2, 256, 64, {300, 129}, Layout::kHeadMajor, Select::kSubset});
  v.push_back({KV_DTYPE_BF16, 32, 8, 128, 16, {4099}, Layout::kHeadMajor, Select::kNone, Ws::kSmall});
  v.push_back({KV_DTYPE_BF16, 32, 8, 128, 16, {4099}, Layout::kHeadMajor, Select::kNone, Ws::kNone});
  v.push_back({KV_DTYPE_BF16, 32, 8, 128, 16, {5000}, Layout::kHeadMajor, Select::kSubset, Ws::kFull});
  v.push_back({KV_DTYPE_BF16, 32, 8, 128, 16, {5000}, Layout::kHeadMajor, Select::kAll, Ws::kFull});
  v.push_back({KV_DTYPE_F32, 8, 1, 64, 64, {3000}, Layout::kHeadMajor, Select::kNone, Ws::kFull, 8.f});
  v.push_back({KV_DTYPE_BF16, 32, 8, 128, 16, {4096, 4096}, Layout::kSingleHead, Select::kNone, Ws::kFull});

  // The CUDA kernels by name. Without a name, bf16 with head_dim 64 or 128 runs the tensor-core
  // kernel (paged_decode.cu); the CUDA-core kernel keeps these bf16 cases of its own.
  constexpr auto kNo = Select::kNone;
  constexpr auto kHM = Layout::kHeadMajor;
  constexpr auto kBF = KV_DTYPE_BF16;
  for (int32_t d : {64, 128})
    for (int32_t g : {1, 4, 8})
      v.push_back({kBF, 2 * g, 2, d, 16, {0, 1, 16, 17, 45, 100, 300}, kHM, kNo, Ws::kFull, 1.f, Kernel::kCudaCore});
  v.push_back({kBF, 32, 8, 128, 16, {4099}, kHM, kNo, Ws::kFull, 1.f, Kernel::kCudaCore});
  v.push_back({kBF, 32, 8, 128, 16, {100, 37, 0, 16}, kHM, Select::kSubset, Ws::kFull, 1.f, Kernel::kCudaCore});

  // Tensor-core kernel: every group size it packs into the 16 MMA rows (1..16, powers of two
  // or not; 24 and 32 take two row tiles), both head_dims, partial last pages.
  const auto tc = [&](int32_t hq, int32_t hkv, int32_t d, int32_t p, std::vector<int32_t> lens,
                      Layout layout = Layout::kHeadMajor, Select sel = Select::kNone, Ws ws = Ws::kFull,
                      float scale_mult = 1.f) {
    v.push_back({kBF, hq, hkv, d, p, std::move(lens), layout, sel, ws, scale_mult, Kernel::kTensorCore});
  };
  for (int32_t d : {64, 128})
    for (int32_t g : {1, 2, 3, 4, 5, 8, 16}) tc(2 * g, 2, d, 16, {0, 1, 16, 17, 45, 100, 300});
  tc(32, 1, 64, 16, {500, 3});  // group 32: two row tiles
  tc(48, 2, 128, 16, {777});    // group 24: a full tile and a half one
  // Page sizes 1 and 64; with P = 1 a split's page list spans several staged chunks (256 entries).
  tc(8, 2, 128, 1, {1, 5, 13, 0, 77});
  tc(8, 2, 64, 1, {2000, 2});
  tc(8, 2, 64, 1, {2000, 300}, kHM, kNo, Ws::kNone);
  tc(8, 2, 128, 64, {0, 64, 65, 200, 7});
  tc(8, 2, 64, 64, {1000, 1});
  // Batch 1, long contexts: split-KV (the plan splits 4K..32K into tens of parts), partial last page.
  tc(32, 8, 128, 16, {32768});
  tc(32, 8, 64, 16, {16383});
  tc(16, 1, 128, 16, {8192});  // group 16
  tc(10, 2, 128, 16, {4097});  // group 5
  tc(24, 8, 128, 16, {12001});  // group 3
  tc(8, 8, 128, 16, {20003});  // group 1
  tc(32, 8, 128, 16, {4099}, kHM, kNo, Ws::kSmall);
  tc(32, 8, 128, 16, {4099}, kHM, kNo, Ws::kNone);
  tc(32, 8, 128, 16, {2500, 1, 0}, kHM, kNo, Ws::kFull, 4.f);
  tc(32, 8, 128, 16, {1000, 3000, 17, 4096, 0, 1, 2048, 513});
  // Split-KV merged in the kernel: batch 1 with many splits, 4K..64K, partial last pages, and
  // three calls on one workspace (the arrival counters reset); both kernels.
  const auto rep3 = [&](int32_t hq, int32_t hkv, int32_t d, std::vector<int32_t> lens, Kernel k) {
    DecodeSpec x{kBF, hq, hkv, d, 16, std::move(lens), kHM, kNo, Ws::kFull, 1.f, k};
    x.repeats = 3;
    v.push_back(std::move(x));
  };
  rep3(32, 8, 128, {4093}, Kernel::kTensorCore);
  rep3(32, 8, 128, {65531}, Kernel::kTensorCore);
  rep3(32, 8, 64, {40001}, Kernel::kTensorCore);
  rep3(8, 1, 128, {30007}, Kernel::kTensorCore);
  rep3(48, 2, 128, {9001}, Kernel::kTensorCore);  // two group tiles, block rows of 16 and 8
  rep3(32, 8, 128, {65531, 1, 0, 16385}, Kernel::kTensorCore);
  rep3(32, 8, 128, {20011}, Kernel::kCudaCore);
  rep3(8, 2, 128, {7000, 33}, Kernel::kAuto);
  // Selections (Quest), per-head tables, token-major pools.
  tc(32, 8, 128, 16, {100, 37, 0, 16}, kHM, Select::kSubset);
  tc(32, 8, 128, 16, {100, 37, 0, 16}, kHM, Select::kAll);
  tc(32, 8, 128, 16, {20000}, kHM, Select::kSubset);
  tc(8, 2, 64, 16, {5000, 70}, kHM, Select::kSubset);
  tc(8, 2, 128, 16, {0, 20, 47, 96}, Layout::kSingleHead, Select::kSubset);
  tc(4, 1, 64, 1, {9, 30, 700}, Layout::kSingleHead, Select::kSubset);
  tc(32, 8, 128, 16, {4096, 4096}, Layout::kSingleHead);
  tc(8, 2, 128, 16, {33, 7, 500}, Layout::kTokenMajor);
  tc(16, 2, 64, 64, {300, 129}, kHM, Select::kSubset);
  return v;
}

// A paged cache built on the host from logical K/V, uploaded to the target.
struct PagedFixture {
  DecodeSpec spec;
  int32_t batch = 0, max_len = 0, max_pages = 0;
  std::vector<TypedData> k, v;  // per sequence [len][hkv][d]
  TypedData q{KV_DTYPE_F32, {}};
  kv_paged_kv kv{};
  kv_page_table table{};
  kv_page_select select{};
  std::vector<int32_t> pages, lens, indices, counts;
  std::unique_ptr<GuardedBuffer> kb, vb, pages_b, lens_b, idx_b, cnt_b, qb, ob, lb, wsb;
  uint64_t ws_bytes = 0;

  float scale() const { return spec.scale_mult / std::sqrt(static_cast<float>(spec.d)); }

  // Logical pages (sequence b, KV head h) attends, in the order the selection lists them.
  std::vector<int32_t> attended(int32_t b, int32_t h) const {
    std::vector<int32_t> out;
    if (spec.select == Select::kNone) {
      for (int32_t j = 0; j < ceil_div(lens[b], spec.page_tokens); ++j) out.push_back(j);
    } else {
      const int64_t list = static_cast<int64_t>(b) * spec.hkv + h;
      for (int32_t i = 0; i < counts[list]; ++i) out.push_back(indices[list * select.stride + i]);
    }
    return out;
  }

  void build(kv_stream_t st, kv_backend be, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int32_t H = spec.hkv, D = spec.d, P = spec.page_tokens;
    batch = static_cast<int32_t>(spec.lens.size());
    lens = spec.lens;
    max_len = *std::max_element(lens.begin(), lens.end());
    max_pages = static_cast<int32_t>(ceil_div(max_len, P));
    for (int32_t b = 0; b < batch; ++b) {
      k.push_back(random_typed(spec.dtype, static_cast<size_t>(lens[b]) * H * D, rng, -1.f, 1.f));
      v.push_back(random_typed(spec.dtype, static_cast<size_t>(lens[b]) * H * D, rng, -1.f, 1.f));
    }
    q = random_typed(spec.dtype, static_cast<size_t>(batch) * spec.hq * D, rng, -1.f, 1.f);

    const bool per_head = spec.layout == Layout::kSingleHead;
    int64_t units = 0;
    for (int32_t l : lens) units += ceil_div(l, P) * (per_head ? H : 1);
    kv.num_pages = units + 3;  // spare pages no table names
    kv.page_tokens = P;
    kv.num_kv_heads = H;
    kv.head_dim = D;
    switch (spec.layout) {
      case Layout::kHeadMajor:
        kv.page_stride = static_cast<int64_t>(H) * P * D;
        kv.head_stride = static_cast<int64_t>(P) * D;
        kv.token_stride = D;
        break;
      case Layout::kTokenMajor:  // [page][token][head][d], pages padded
        kv.page_stride = static_cast<int64_t>(P) * H * D + 8;
        kv.head_stride = D;
        kv.token_stride = static_cast<int64_t>(H) * D;
        break;
      case Layout::kSingleHead:
        kv.page_stride = static_cast<int64_t>(P) * D;
        kv.head_stride = 0;
        kv.token_stride = D;
        break;
    }
    std::vector<int32_t> perm(static_cast<size_t>(kv.num_pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    TypedData kp{spec.dtype, std::vector<float>(static_cast<size_t>(kv.num_pages * kv.page_stride), kNaN)};
    TypedData vp{spec.dtype, std::vector<float>(kp.values.size(), kNaN)};
    const int64_t tstride = max_pages + 1;
    table.head_stride = per_head ? tstride : 0;
    table.seq_stride = per_head ? tstride * H : tstride;
    pages.assign(static_cast<size_t>(batch * table.seq_stride), kBadPage);
    int64_t next = 0;
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t j = 0; j < ceil_div(lens[b], P); ++j) {
        int32_t shared_page = per_head ? -1 : perm[next++];
        for (int32_t h = 0; h < H; ++h) {
          const int32_t page = per_head ? perm[next++] : shared_page;
          pages[b * table.seq_stride + h * table.head_stride + j] = page;
          for (int32_t t = j * P; t < std::min(lens[b], (j + 1) * P); ++t) {
            const int64_t dst = page * kv.page_stride + h * kv.head_stride + (t - j * P) * kv.token_stride;
            const int64_t src = (static_cast<int64_t>(t) * H + h) * D;
            std::copy_n(k[b].values.begin() + src, D, kp.values.begin() + dst);
            std::copy_n(v[b].values.begin() + src, D, vp.values.begin() + dst);
          }
        }
      }

    if (spec.select != Select::kNone) {
      select.stride = max_pages + 2;
      indices.assign(static_cast<size_t>(batch) * H * select.stride, -77);  // past counts: never read
      counts.assign(static_cast<size_t>(batch) * H, 0);
      for (int32_t b = 0; b < batch; ++b)
        for (int32_t h = 0; h < H; ++h) {
          std::vector<int32_t> all(static_cast<size_t>(ceil_div(lens[b], P)));
          std::iota(all.begin(), all.end(), 0);
          std::shuffle(all.begin(), all.end(), rng);
          int32_t count = static_cast<int32_t>(all.size());
          if (spec.select == Select::kSubset && count > 0)
            count = std::uniform_int_distribution<int32_t>(0, count)(rng);
          const int64_t list = static_cast<int64_t>(b) * H + h;
          counts[list] = count;
          std::copy_n(all.begin(), count, indices.begin() + list * select.stride);
        }
    }

    kb = upload_typed(st, be, kp);
    vb = upload_typed(st, be, vp);
    pages_b = upload_vec(st, be, pages);
    lens_b = upload_vec(st, be, lens);
    kv.k_pages = kb->data();
    kv.v_pages = vb->data();
    table.pages = static_cast<const int32_t*>(pages_b->data());
    table.kv_lens = static_cast<const int32_t*>(lens_b->data());
    if (spec.select != Select::kNone) {
      idx_b = upload_vec(st, be, indices);
      cnt_b = upload_vec(st, be, counts);
      select.indices = static_cast<const int32_t*>(idx_b->data());
      select.counts = static_cast<const int32_t*>(cnt_b->data());
    }
    qb = upload_typed(st, be, q);
    const size_t rows = static_cast<size_t>(batch) * spec.hq;
    ob = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, rows * D * dtype_bytes(spec.dtype));
    lb = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, rows * 4);
    ob->fill(0xFF);
    lb->fill(0xFF);
    ws_bytes = kv_paged_decode_workspace_bytes(st, batch, spec.hq, D, max_len);
    if (spec.ws == Ws::kSmall) ws_bytes /= 3;
    if (spec.ws == Ws::kNone) ws_bytes = 0;
    if (ws_bytes > 0) {
      wsb = std::make_unique<GuardedBuffer>(st, be, KV_MEM_DEVICE, ws_bytes);
      wsb->fill(0xFF);  // scratch starts as garbage
    }
  }

  kv_status run(kv_stream_t st) {
    return kv_paged_decode_async(st, spec.dtype, qb->data(), &kv, &table,
                                 spec.select == Select::kNone ? nullptr : &select, ob->data(),
                                 static_cast<float*>(lb->data()), batch, spec.hq, max_len, scale(),
                                 wsb ? wsb->data() : nullptr, ws_bytes);
  }

  // The double reference over the attended tokens of every (sequence, KV head).
  StateRef reference() const {
    const int32_t H = spec.hkv, D = spec.d, P = spec.page_tokens, g = spec.hq / H;
    StateRef r;
    const size_t rows = static_cast<size_t>(batch) * spec.hq;
    r.o.assign(rows * D, 0.0);
    r.o_bound.assign(rows * D, 0.0);
    r.lse.assign(rows, 0.0);
    r.lse_bound.assign(rows, 0.0);
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t h = 0; h < H; ++h) {
        std::vector<float> kk, vv;
        int64_t n = 0;
        for (int32_t j : attended(b, h))
          for (int32_t t = j * P; t < std::min(lens[b], (j + 1) * P); ++t, ++n) {
            const size_t src = (static_cast<size_t>(t) * H + h) * D;
            kk.insert(kk.end(), k[b].values.begin() + src, k[b].values.begin() + src + D);
            vv.insert(vv.end(), v[b].values.begin() + src, v[b].values.begin() + src + D);
          }
        const size_t row0 = static_cast<size_t>(b) * spec.hq + static_cast<size_t>(h) * g;
        std::vector<float> qg(q.values.begin() + row0 * D, q.values.begin() + (row0 + g) * D);
        StateRef part = attention_reference(qg, kk, vv, 1, g, 1, D, n, scale(), spec.dtype);
        std::copy(part.o.begin(), part.o.end(), r.o.begin() + row0 * D);
        std::copy(part.o_bound.begin(), part.o_bound.end(), r.o_bound.begin() + row0 * D);
        std::copy(part.lse.begin(), part.lse.end(), r.lse.begin() + row0);
        std::copy(part.lse_bound.begin(), part.lse_bound.end(), r.lse_bound.begin() + row0);
      }
    return r;
  }
};

struct DecodeParam {
  size_t index;
  Target target;
};

const std::vector<DecodeSpec>& all_decode_specs() {
  static const std::vector<DecodeSpec> specs = decode_specs();
  return specs;
}

class PagedDecodeTest : public ::testing::TestWithParam<DecodeParam> {};

TEST_P(PagedDecodeTest, MatchesReferenceAndDense) {
  const DecodeParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const DecodeSpec& spec = all_decode_specs()[p.index];
  const uint64_t seed = seed_for("paged_decode/" + spec.name() + "/" + p.target.name());
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));
  StreamHolder stream(p.target);
  kv_stream_t st = stream.get();
  const KernelEnv kernel_env(spec.kernel);
  PagedFixture f;
  f.spec = spec;
  f.build(st, p.target.backend, seed);
  const size_t rows = static_cast<size_t>(f.batch) * spec.hq;
  const StateRef ref = f.reference();
  std::vector<std::string> failures;
  std::vector<float> o, lse;
  for (int32_t call = 0; call < spec.repeats; ++call) {
    if (call > 0) {  // poisoned again (NaN): a call that writes nothing cannot pass on the last one's output
      f.ob->fill(0xFF);
      f.lb->fill(0xFF);
    }
    ASSERT_EQ(f.run(st), KV_STATUS_OK) << kv_last_error();
    ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
    o = read_typed(*f.ob, spec.dtype, rows * spec.d);
    lse = f.lb->download_all<float>();
    const std::string tag = spec.repeats > 1 ? "call " + std::to_string(call) + ": " : "";
    check_all_written(*f.ob, o, (tag + "o").c_str(), failures);
    check_all_written(*f.lb, lse, (tag + "lse").c_str(), failures);
    if (f.wsb && !f.wsb->guards_intact()) failures.push_back(tag + "workspace: write past its end");
    for (const CompareResult& c : {compare(o, ref.o, ref.o_bound, (tag + "o").c_str()),
                                   compare(lse, ref.lse, ref.lse_bound, (tag + "lse").c_str())})
      if (!c.ok) failures.push_back(c.message);
  }

  // Without a selection: the dense op over the same K/V gathered contiguous, per sequence.
  // Both are within the reference bound, so they differ by at most twice it.
  if (spec.select == Select::kNone) {
    for (int32_t b = 0; b < f.batch; ++b) {
      const size_t row0 = static_cast<size_t>(b) * spec.hq;
      TypedData qs{spec.dtype, std::vector<float>(f.q.values.begin() + row0 * spec.d,
                                                  f.q.values.begin() + (row0 + spec.hq) * spec.d)};
      auto qb = upload_typed(st, p.target.backend, qs);
      auto kb = upload_typed(st, p.target.backend, f.k[b]);
      auto vb = upload_typed(st, p.target.backend, f.v[b]);
      GuardedBuffer ob(st, p.target.backend, KV_MEM_DEVICE, static_cast<size_t>(spec.hq) * spec.d * dtype_bytes(spec.dtype));
      GuardedBuffer lb(st, p.target.backend, KV_MEM_DEVICE, static_cast<size_t>(spec.hq) * 4);
      const uint64_t ws = kv_attention_decode_workspace_bytes(st, 1, spec.hq, spec.d, f.lens[b]);
      std::unique_ptr<GuardedBuffer> wsb;
      if (ws) wsb = std::make_unique<GuardedBuffer>(st, p.target.backend, KV_MEM_DEVICE, ws);
      ASSERT_EQ(kv_attention_decode_async(st, spec.dtype, qb->data(), kb->data(), vb->data(), ob.data(),
                                          static_cast<float*>(lb.data()), 1, spec.hq, spec.hkv, spec.d, f.lens[b],
                                          f.scale(), wsb ? wsb->data() : nullptr, ws),
                KV_STATUS_OK)
          << kv_last_error();
      std::vector<float> od = read_typed(ob, spec.dtype, static_cast<size_t>(spec.hq) * spec.d);
      std::vector<float> ld = lb.download_all<float>();
      std::vector<double> od_ref(od.begin(), od.end()), ld_ref(ld.begin(), ld.end());
      std::vector<double> ob2(ref.o_bound.begin() + row0 * spec.d, ref.o_bound.begin() + (row0 + spec.hq) * spec.d);
      std::vector<double> lb2(ref.lse_bound.begin() + row0, ref.lse_bound.begin() + row0 + spec.hq);
      for (double& x : ob2) x *= 2;
      for (double& x : lb2) x *= 2;
      std::vector<float> op(o.begin() + row0 * spec.d, o.begin() + (row0 + spec.hq) * spec.d);
      std::vector<float> lp(lse.begin() + row0, lse.begin() + row0 + spec.hq);
      const std::string what = "sequence " + std::to_string(b) + " vs dense";
      for (const CompareResult& c : {compare(op, od_ref, ob2, (what + " o").c_str()),
                                     compare(lp, ld_ref, lb2, (what + " lse").c_str())})
        if (!c.ok) failures.push_back(c.message);
    }
  }
  for (const auto& msg : failures) ADD_FAILURE() << spec.name() << " on " << p.target.name() << ": " << msg;
}

std::vector<DecodeParam> decode_params() {
  std::vector<DecodeParam> out;
  for (size_t i = 0; i < all_decode_specs().size(); ++i)
    for (const Target& t : all_targets())
      if (all_decode_specs()[i].kernel == Kernel::kAuto || t.backend == KV_BACKEND_CUDA) out.push_back({i, t});
  return out;
}

std::string sanitize(std::string name) {
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

std::string decode_name(const ::testing::TestParamInfo<DecodeParam>& info) {
  return sanitize(all_decode_specs()[info.param.index].name() + "_" + info.param.target.name());
}

INSTANTIATE_TEST_SUITE_P(Cases, PagedDecodeTest, ::testing::ValuesIn(decode_params()), decode_name);

// Selecting every page (in any order) gives the dense result; checked above against the
// reference, here against the no-selection call directly on one pool.
class PagedSelectAllTest : public ::testing::TestWithParam<Target> {};

TEST_P(PagedSelectAllTest, EqualsNoSelection) {
  const Target& t = GetParam();
  const std::string why = unavailable_reason(t);
  if (!why.empty()) GTEST_SKIP() << why;
  const uint64_t seed = seed_for("paged_select_all/" + t.name());
  SCOPED_TRACE("seed " + std::to_string(seed));
  StreamHolder stream(t);
  kv_stream_t st = stream.get();
  PagedFixture f;
  f.spec = {KV_DTYPE_BF16, 16, 4, 128, 16, {300, 17, 1}, Layout::kHeadMajor, Select::kAll};
  f.build(st, t.backend, seed);
  ASSERT_EQ(f.run(st), KV_STATUS_OK) << kv_last_error();
  const size_t rows = static_cast<size_t>(f.batch) * f.spec.hq;
  std::vector<float> o_sel = read_typed(*f.ob, f.spec.dtype, rows * f.spec.d);
  std::vector<float> l_sel = f.lb->download_all<float>();
  f.spec.select = Select::kNone;
  f.ob->fill(0xFF);
  f.lb->fill(0xFF);
  ASSERT_EQ(f.run(st), KV_STATUS_OK) << kv_last_error();
  std::vector<float> o_all = read_typed(*f.ob, f.spec.dtype, rows * f.spec.d);
  std::vector<float> l_all = f.lb->download_all<float>();
  const StateRef ref = f.reference();
  std::vector<double> ob2 = ref.o_bound, lb2 = ref.lse_bound;
  for (double& x : ob2) x *= 2;
  for (double& x : lb2) x *= 2;
  std::vector<double> o_ref(o_all.begin(), o_all.end()), l_ref(l_all.begin(), l_all.end());
  for (const CompareResult& c : {compare(o_sel, o_ref, ob2, "o"), compare(l_sel, l_ref, lb2, "lse")})
    EXPECT_TRUE(c.ok) << c.message;
}

std::string target_name(const ::testing::TestParamInfo<Target>& info) { return info.param.name(); }

INSTANTIATE_TEST_SUITE_P(Targets, PagedSelectAllTest, ::testing::ValuesIn(all_targets()), target_name);

// ============================================================================ append

struct AppendSpec {
  kv_dtype dtype;
  int32_t hkv, d, page_tokens;
  int64_t num_tokens;
  Layout layout;

  std::string name() const {
    std::ostringstream s;
    s << dtype_name(dtype) << "_hkv" << hkv << "_d" << d << "_P" << page_tokens << "_tokens" << num_tokens
      << (layout == Layout::kHeadMajor ? "_headmajor" : layout == Layout::kTokenMajor ? "_tokenmajor" : "_perhead");
    return s.str();
  }
};

std::vector<AppendSpec> append_specs() {
  std::vector<AppendSpec> v;
  for (kv_dtype t : {KV_DTYPE_F32, KV_DTYPE_BF16})
    for (int32_t d : {64, 128, 256})
      for (int32_t p : {1, 16}) v.push_back({t, 4, d, p, 37, Layout::kHeadMajor});
  for (kv_dtype t : {KV_DTYPE_F32, KV_DTYPE_BF16}) {
    v.push_back({t, 4, 128, 16, 29, Layout::kSingleHead});
    v.push_back({t, 3, 64, 8, 20, Layout::kTokenMajor});
  }
  v.push_back({KV_DTYPE_BF16, 8, 128, 64, 1000, Layout::kHeadMajor});
  v.push_back({KV_DTYPE_BF16, 2, 128, 16, 0, Layout::kHeadMajor});
  return v;
}

const std::vector<AppendSpec>& all_append_specs() {
  static const std::vector<AppendSpec> specs = append_specs();
  return specs;
}

struct AppendParam {
  size_t index;
  Target target;
};

class PagedAppendTest : public ::testing::TestWithParam<AppendParam> {};

TEST_P(PagedAppendTest, BitExactScatter) {
  const AppendParam& p = GetParam();
  const std::string why = unavailable_reason(p.target);
  if (!why.empty()) GTEST_SKIP() << why;
  const AppendSpec& spec = all_append_specs()[p.index];
  const uint64_t seed = seed_for("paged_append/" + spec.name() + "/" + p.target.name());
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  StreamHolder stream(p.target);
  kv_stream_t st = stream.get();
  const int32_t H = spec.hkv, D = spec.d, P = spec.page_tokens;
  const bool per_head = spec.layout == Layout::kSingleHead;
  const int64_t T = spec.num_tokens;
  kv_paged_kv kv{};
  kv.page_tokens = P;
  kv.num_kv_heads = H;
  kv.head_dim = D;
  const int64_t rows_needed = T * (per_head ? H : 1);
  kv.num_pages = ceil_div(rows_needed + 5, P) + 2;
  if (spec.layout == Layout::kHeadMajor) {
    kv.page_stride = static_cast<int64_t>(H) * P * D;
    kv.head_stride = static_cast<int64_t>(P) * D;
    kv.token_stride = D;
  } else if (spec.layout == Layout::kTokenMajor) {
    kv.page_stride = static_cast<int64_t>(P) * H * D + 16;
    kv.head_stride = D;
    kv.token_stride = static_cast<int64_t>(H) * D;
  } else {
    kv.page_stride = static_cast<int64_t>(P) * D;
    kv.head_stride = 0;
    kv.token_stride = D;
  }
  const size_t esz = dtype_bytes(spec.dtype);
  const size_t pool_elems = static_cast<size_t>(kv.num_pages * kv.page_stride);
  TypedData k_pool = random_typed(spec.dtype, pool_elems, rng, -4.f, 4.f);
  TypedData v_pool = random_typed(spec.dtype, pool_elems, rng, -4.f, 4.f);
  TypedData k_new = random_typed(spec.dtype, static_cast<size_t>(T) * H * D, rng, -1.f, 1.f);
  TypedData v_new = random_typed(spec.dtype, static_cast<size_t>(T) * H * D, rng, -1.f, 1.f);
  // Distinct slots (about one row in five skipped with a negative slot).
  std::vector<int64_t> all_slots(static_cast<size_t>(kv.num_pages * P));
  std::iota(all_slots.begin(), all_slots.end(), 0);
  std::shuffle(all_slots.begin(), all_slots.end(), rng);
  std::vector<int64_t> slots(static_cast<size_t>(rows_needed));
  std::bernoulli_distribution skip(0.2);
  for (size_t i = 0; i < slots.size(); ++i) slots[i] = skip(rng) ? -1 - static_cast<int64_t>(i % 3) : all_slots[i];

  // The naive scatter, on raw bytes.
  std::vector<unsigned char> k_expect = k_pool.raw(), v_expect = v_pool.raw();
  const std::vector<unsigned char> k_rows = k_new.raw(), v_rows = v_new.raw();
  for (int64_t t = 0; t < T; ++t)
    for (int32_t h = 0; h < H; ++h) {
      const int64_t slot = slots[per_head ? t * H + h : t];
      if (slot < 0) continue;
      const int64_t dst = ((slot / P) * kv.page_stride + h * kv.head_stride + (slot % P) * kv.token_stride) * esz;
      const int64_t src = (t * H + h) * D * esz;
      std::memcpy(k_expect.data() + dst, k_rows.data() + src, D * esz);
      std::memcpy(v_expect.data() + dst, v_rows.data() + src, D * esz);
    }

  auto kb = upload_typed(st, p.target.backend, k_pool);
  auto vb = upload_typed(st, p.target.backend, v_pool);
  auto knb = upload_vec(st, p.target.backend, k_rows);
  auto vnb = upload_vec(st, p.target.backend, v_rows);
  auto sb = upload_vec(st, p.target.backend, slots);
  kv.k_pages = kb->data();
  kv.v_pages = vb->data();
  ASSERT_EQ(kv_paged_append_async(st, spec.dtype, knb->data(), vnb->data(), static_cast<const int64_t*>(sb->data()),
                                  per_head ? H : 0, T, &kv),
            KV_STATUS_OK)
      << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
  std::vector<unsigned char> k_got(k_expect.size()), v_got(v_expect.size());
  kb->download(k_got.data(), k_got.size());
  vb->download(v_got.data(), v_got.size());
  EXPECT_TRUE(kb->guards_intact() && vb->guards_intact()) << "write outside the pool (canary changed)";
  for (int which = 0; which < 2; ++which) {
    const auto& got = which ? v_got : k_got;
    const auto& exp = which ? v_expect : k_expect;
    auto mismatch = std::mismatch(got.begin(), got.end(), exp.begin());
    EXPECT_TRUE(mismatch.first == got.end())
        << (which ? "v" : "k") << " pool differs from the naive scatter at byte "
        << (mismatch.first - got.begin()) << " (element " << (mismatch.first - got.begin()) / esz << ")";
  }
}

std::vector<AppendParam> append_params() {
  std::vector<AppendParam> out;
  for (size_t i = 0; i < all_append_specs().size(); ++i)
    for (const Target& t : all_targets()) out.push_back({i, t});
  return out;
}

std::string append_name(const ::testing::TestParamInfo<AppendParam>& info) {
  return sanitize(all_append_specs()[info.param.index].name() + "_" + info.param.target.name());
}

INSTANTIATE_TEST_SUITE_P(Cases, PagedAppendTest, ::testing::ValuesIn(append_params()), append_name);

// ============================================================================ bad input

class PagedBadInputTest : public ::testing::TestWithParam<Target> {
 protected:
  // Expects `status` from the call and a message containing `needle`.
  static void expect_error(kv_status got, kv_status want, const std::string& needle, const char* call) {
    EXPECT_EQ(got, want) << call << ": " << kv_last_error();
    EXPECT_NE(std::string(kv_last_error()).find(needle), std::string::npos)
        << call << ": message does not name '" << needle << "': " << kv_last_error();
  }
  // A bad index in stream memory: the CPU fails the call, CUDA the next synchronize.
  static void expect_index_error(kv_stream_t st, kv_backend be, kv_status got, const std::string& cpu_needle,
                                 const std::string& cuda_needle, const char* call) {
    if (be == KV_BACKEND_CPU) {
      expect_error(got, KV_STATUS_INVALID_ARGUMENT, cpu_needle, call);
    } else {
      EXPECT_EQ(got, KV_STATUS_OK) << call << ": " << kv_last_error();
      expect_error(kv_stream_synchronize(st), KV_STATUS_INVALID_ARGUMENT, cuda_needle, call);
      EXPECT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << "the device error is reported once";
    }
  }
};

TEST_P(PagedBadInputTest, ErrorsNameTheArgument) {
  const Target& t = GetParam();
  const std::string why = unavailable_reason(t);
  if (!why.empty()) GTEST_SKIP() << why;
  const uint64_t seed = seed_for("paged_bad_input/" + t.name());
  SCOPED_TRACE("seed " + std::to_string(seed));
  StreamHolder stream(t);
  kv_stream_t st = stream.get();
  const kv_backend be = t.backend;
  PagedFixture f;
  f.spec = {KV_DTYPE_BF16, 4, 2, 64, 4, {6, 3}, Layout::kHeadMajor, Select::kSubset};
  f.build(st, be, seed);
  ASSERT_EQ(f.run(st), KV_STATUS_OK) << kv_last_error();
  ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
  const kv_dtype dt = f.spec.dtype;
  void* q = f.qb->data();
  void* o = f.ob->data();
  float* lse = static_cast<float*>(f.lb->data());
  const float sc = f.scale();
  auto decode = [&](const kv_paged_kv* kv, const kv_page_table* table, const kv_page_select* sel, int32_t hq,
                    int32_t max_len, float scale) {
    return kv_paged_decode_async(st, dt, q, kv, table, sel, o, lse, f.batch, hq, max_len, scale, nullptr, 0);
  };

  // Host-visible arguments.
  expect_error(kv_paged_decode_async(nullptr, dt, q, &f.kv, &f.table, nullptr, o, lse, f.batch, 4, f.max_len, sc,
                                     nullptr, 0),
               KV_STATUS_INVALID_ARGUMENT, "stream", "NULL stream");
  expect_error(kv_paged_decode_async(st, static_cast<kv_dtype>(7), q, &f.kv, &f.table, nullptr, o, lse, f.batch, 4,
                                     f.max_len, sc, nullptr, 0),
               KV_STATUS_INVALID_ARGUMENT, "dtype", "bad dtype");
  expect_error(decode(nullptr, &f.table, nullptr, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "kv is NULL", "NULL kv");
  {
    kv_paged_kv bad = f.kv;
    bad.page_tokens = 0;
    expect_error(decode(&bad, &f.table, nullptr, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "page_tokens", "P=0");
    bad = f.kv;
    bad.head_dim = 96;
    expect_error(decode(&bad, &f.table, nullptr, 4, f.max_len, sc), KV_STATUS_UNSUPPORTED, "head_dim", "head_dim 96");
    bad = f.kv;
    bad.page_stride = 8;
    expect_error(decode(&bad, &f.table, nullptr, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "page_stride",
                 "overlapping pages");
    bad = f.kv;
    bad.k_pages = nullptr;
    expect_error(decode(&bad, &f.table, nullptr, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "k_pages", "NULL pool");
  }
  expect_error(decode(&f.kv, &f.table, nullptr, 3, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "num_q_heads",
               "hq not a multiple");
  expect_error(decode(&f.kv, &f.table, nullptr, 4, -1, sc), KV_STATUS_INVALID_ARGUMENT, "max_kv_len", "max_kv_len<0");
  expect_error(decode(&f.kv, &f.table, nullptr, 4, f.max_len, 0.f), KV_STATUS_INVALID_ARGUMENT, "sm_scale", "scale 0");
  expect_error(decode(&f.kv, &f.table, nullptr, 4, f.max_len, std::nanf("")), KV_STATUS_INVALID_ARGUMENT, "sm_scale",
               "scale NaN");
  expect_error(decode(&f.kv, nullptr, nullptr, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "table is NULL",
               "NULL table");
  {
    kv_page_table bad = f.table;
    bad.kv_lens = nullptr;
    expect_error(decode(&f.kv, &bad, nullptr, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "kv_lens", "NULL lens");
    bad = f.table;
    bad.head_stride = 3;  // per-head tables on a head-major pool
    expect_error(decode(&f.kv, &bad, nullptr, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "head_stride",
                 "per-head table on shared pool");
  }
  {
    kv_page_select bad = f.select;
    bad.stride = 0;
    expect_error(decode(&f.kv, &f.table, &bad, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "select.stride",
                 "stride 0");
    bad = f.select;
    bad.counts = nullptr;
    expect_error(decode(&f.kv, &f.table, &bad, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "select.counts",
                 "NULL counts");
    bad = f.select;
    bad.reserved = 1;
    expect_error(decode(&f.kv, &f.table, &bad, 4, f.max_len, sc), KV_STATUS_INVALID_ARGUMENT, "select.reserved",
                 "reserved");
  }
  expect_error(kv_paged_decode_async(st, dt, nullptr, &f.kv, &f.table, nullptr, o, lse, f.batch, 4, f.max_len, sc,
                                     nullptr, 0),
               KV_STATUS_INVALID_ARGUMENT, "q is NULL", "NULL q");
  expect_error(kv_paged_decode_async(st, dt, q, &f.kv, &f.table, nullptr, nullptr, lse, f.batch, 4, f.max_len, sc,
                                     nullptr, 0),
               KV_STATUS_INVALID_ARGUMENT, "o is NULL", "NULL o");
  expect_error(kv_paged_decode_async(st, dt, q, &f.kv, &f.table, nullptr, o, lse, -1, 4, f.max_len, sc, nullptr, 0),
               KV_STATUS_INVALID_ARGUMENT, "batch", "batch<0");
  expect_error(kv_paged_decode_async(st, dt, q, &f.kv, &f.table, nullptr, o, lse, f.batch, 4, f.max_len, sc, nullptr,
                                     64),
               KV_STATUS_INVALID_ARGUMENT, "workspace", "NULL workspace with bytes");

  // Indices in stream memory.
  auto patch = [&](GuardedBuffer& buf, size_t index, int32_t value) {
    buf.upload(&value, sizeof value, index * sizeof value);
  };
  // Both CUDA kernels record the same errors (bf16 with head_dim 64 runs the tensor-core one by default).
  for (Kernel kernel : {Kernel::kAuto, Kernel::kCudaCore}) {
    if (kernel != Kernel::kAuto && be != KV_BACKEND_CUDA) continue;
    SCOPED_TRACE(std::string("kernel ") + kernel_env_value(kernel));
    const KernelEnv kernel_env(kernel);
    patch(*f.pages_b, 1, static_cast<int32_t>(f.kv.num_pages));  // sequence 0, logical page 1
    expect_index_error(st, be, decode(&f.kv, &f.table, nullptr, 4, f.max_len, sc), "table.pages[1]",
                       "page table entry outside", "page id out of range");
    patch(*f.pages_b, 1, -1);
    expect_index_error(st, be, decode(&f.kv, &f.table, nullptr, 4, f.max_len, sc), "table.pages[1]",
                       "page table entry outside", "negative page id");
    patch(*f.pages_b, 1, f.pages[1]);
    expect_index_error(st, be, decode(&f.kv, &f.table, nullptr, 4, f.max_len - 1, sc), "kv_lens[0]",
                       "kv_lens entry outside", "kv_len > max_kv_len");
    patch(*f.cnt_b, 0, f.select.stride + 1);
    expect_index_error(st, be, decode(&f.kv, &f.table, &f.select, 4, f.max_len, sc), "select.counts[0]",
                       "selected page outside", "count > stride");
    patch(*f.cnt_b, 0, 1);
    patch(*f.idx_b, 0, 2);  // sequence 0 has ceil(6 / 4) = 2 pages
    expect_index_error(st, be, decode(&f.kv, &f.table, &f.select, 4, f.max_len, sc), "select.indices[0]",
                       "selected page outside", "selected page out of range");
    patch(*f.idx_b, 0, 0);
    ASSERT_EQ(decode(&f.kv, &f.table, &f.select, 4, f.max_len, sc), KV_STATUS_OK) << kv_last_error();
    ASSERT_EQ(kv_stream_synchronize(st), KV_STATUS_OK) << kv_last_error();
    patch(*f.cnt_b, 0, f.counts[0]);  // the fixture's selection again
    patch(*f.idx_b, 0, f.indices[0]);
  }

  // Append.
  std::vector<uint16_t> rows(static_cast<size_t>(2) * f.spec.hkv * f.spec.d, 0x3f80);
  auto rb = upload_vec(st, be, rows);
  std::vector<int64_t> slots = {0, f.kv.num_pages * f.kv.page_tokens};
  auto sb = upload_vec(st, be, slots);
  const int64_t* sp = static_cast<const int64_t*>(sb->data());
  expect_error(kv_paged_append_async(st, dt, rb->data(), rb->data(), nullptr, 0, 2, &f.kv), KV_STATUS_INVALID_ARGUMENT,
               "slots is NULL", "NULL slots");
  expect_error(kv_paged_append_async(st, dt, nullptr, rb->data(), sp, 0, 2, &f.kv), KV_STATUS_INVALID_ARGUMENT,
               "k is NULL", "NULL k");
  expect_error(kv_paged_append_async(st, dt, rb->data(), rb->data(), sp, 3, 2, &f.kv), KV_STATUS_INVALID_ARGUMENT,
               "slots_head_stride", "bad slots_head_stride");
  expect_error(kv_paged_append_async(st, dt, rb->data(), rb->data(), sp, 0, -1, &f.kv), KV_STATUS_INVALID_ARGUMENT,
               "num_tokens", "negative num_tokens");
  expect_error(kv_paged_append_async(st, dt, rb->data(), rb->data(), sp, 0, 2, nullptr), KV_STATUS_INVALID_ARGUMENT,
               "kv is NULL", "NULL kv");
  {
    kv_paged_kv single = f.kv;
    single.head_stride = 0;
    single.page_stride = static_cast<int64_t>(single.page_tokens) * single.head_dim;
    expect_error(kv_paged_append_async(st, dt, rb->data(), rb->data(), sp, 0, 2, &single), KV_STATUS_INVALID_ARGUMENT,
                 "slots_head_stride", "shared slots on single-head pages");
  }
  expect_index_error(st, be, kv_paged_append_async(st, dt, rb->data(), rb->data(), sp, 0, 2, &f.kv), "slots[1]",
                     "slot outside", "slot out of range");
}

INSTANTIATE_TEST_SUITE_P(Targets, PagedBadInputTest, ::testing::ValuesIn(all_targets()), target_name);

}  // namespace
}  // namespace kvt
