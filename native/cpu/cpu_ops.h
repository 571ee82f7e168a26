// CPU backend: the reference semantics of every operation, with AVX2 paths chosen at run
// time. Arguments arrive validated (core/api_ops.cc).
#pragma once

#include "core/op_args.h"
#include "kvasir/kvasir.h"

namespace kv::cpu {

void merge_states(const MergeArgs& args);
// The split-KV epilogue of the decode ops: `splits` fp32 partial states, o [splits][rows][head_dim]
// and lse [splits][rows], merged into o (out_dtype) and lse (may be null). With one split this
// is the conversion to the output dtype.
void merge_split_states(const float* part_o, const float* part_lse, int64_t splits, int64_t rows, int32_t head_dim,
                        kv_dtype out_dtype, void* o, float* lse);
void attention_decode(const AttentionDecodeArgs& args);
void attention_prefill(const AttentionPrefillArgs& args);
void page_copy(const PageCopyArgs& args);
void roofline_probe(uint64_t buffer_bytes, int32_t repetitions, kv_roofline* out);

// Host facts for device properties.
uint64_t host_memory_bytes();
const char* host_cpu_name();

}  // namespace kv::cpu
