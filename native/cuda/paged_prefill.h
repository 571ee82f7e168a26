// The CUDA backend of kv_paged_prefill_async, as seen from the core (no CUDA types).
#pragma once

#include "core/paged_args.h"

namespace kv::cuda {

struct Stream;

// Causal varlen prefill over paged K/V (arguments validated by core/api_paged_prefill.cc).
// bf16 with head_dim 64 or 128: the tensor-core kernel of attention_prefill_kernel.cuh with
// its paged policy (q and o 16-byte aligned); otherwise a simple fp32 kernel. Bad q_indptr,
// kv_lens or page ids are recorded in the stream's error record (kv_stream_synchronize
// fails); the affected sequence or page is skipped. Throws kv::Error on a failed launch.
void paged_prefill(Stream* stream, const PagedPrefillArgs& args);

}  // namespace kv::cuda
