// Dense single-query attention on the CPU. One task owns (sequence, KV head, KV split) and runs
// attend_rows (attention.cc) over its tokens; splits of one sequence are combined with the
// attention-state merge, as on the GPU.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/attention.h"
#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace kv::cpu {
namespace {

constexpr int64_t kMinSplitTokens = 512;

struct Task {
  int32_t b, kvh;
  int64_t t_begin, t_end;
};

template <typename T>
void attend_task(const AttentionDecodeArgs& a, const Task& task, float* o_out, float* lse_out, bool avx2,
                 std::vector<float>& scratch) {
  const int32_t d = a.head_dim;
  const int32_t g = a.num_q_heads / a.num_kv_heads;
  const int32_t h0 = task.kvh * g;
  const int64_t row_stride = static_cast<int64_t>(a.num_kv_heads) * d;
  const T* q = static_cast<const T*>(a.q) + (static_cast<int64_t>(task.b) * a.num_q_heads + h0) * d;
  const int64_t base = static_cast<int64_t>(task.b) * a.kv_len * row_stride + static_cast<int64_t>(task.kvh) * d;
  std::vector<float> qf(static_cast<size_t>(g) * d);
  for (int64_t i = 0; i < static_cast<int64_t>(g) * d; ++i) qf[i] = load_elem(q, i);
  attend_rows(qf.data(), static_cast<const T*>(a.k) + base, static_cast<const T*>(a.v) + base, row_stride, g, d,
              a.sm_scale, task.t_begin, task.t_end, o_out, lse_out, avx2, scratch);
}

template <typename T>
void attention_typed(const AttentionDecodeArgs& a) {
  const bool avx2 = active_isa() >= KV_CPU_ISA_AVX2;
  const int32_t d = a.head_dim;
  const int32_t g = a.num_q_heads / a.num_kv_heads;
  const int64_t groups = static_cast<int64_t>(a.batch) * a.num_kv_heads;
  const int64_t rows = static_cast<int64_t>(a.batch) * a.num_q_heads;

  // Split the KV when there are fewer groups than threads to keep busy.
  int64_t splits = 1;
  const int64_t threads = thread_count();
  if (groups < 2 * threads && a.kv_len >= 2 * kMinSplitTokens)
    splits = std::min<int64_t>((2 * threads + groups - 1) / groups, a.kv_len / kMinSplitTokens);

  // Partial states [splits][rows][d] and [splits][rows] in fp32.
  std::vector<float> part_o(static_cast<size_t>(splits * rows * d));
  std::vector<float> part_lse(static_cast<size_t>(splits * rows));
  parallel_for(groups * splits, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t i = begin; i < end; ++i) {
      int64_t split = i % splits, group = i / splits;
      Task task{static_cast<int32_t>(group / a.num_kv_heads), static_cast<int32_t>(group % a.num_kv_heads),
                a.kv_len * split / splits, a.kv_len * (split + 1) / splits};
      int64_t row0 = static_cast<int64_t>(task.b) * a.num_q_heads + static_cast<int64_t>(task.kvh) * g;
      attend_task<T>(a, task, part_o.data() + (split * rows + row0) * d, part_lse.data() + split * rows + row0, avx2,
                scratch);
    }
  });

  merge_split_states(part_o.data(), part_lse.data(), splits, rows, static_cast<int32_t>(d), a.dtype, a.o, a.lse);
}

}  // namespace

void attention_decode(const AttentionDecodeArgs& a) {
  if (a.dtype == KV_DTYPE_BF16) attention_typed<uint16_t>(a);
  else attention_typed<float>(a);
}

}  // namespace kv::cpu
