// The CPU backend of kv_paged_prefill_async: the reference semantics of the op.
#pragma once

#include "core/paged_args.h"

namespace kv::cpu {

// Causal varlen prefill over paged K/V (arguments validated by core/api_paged_prefill.cc).
// Validates q_indptr, kv_lens and every page id it will read first and throws kv::Error
// (KV_STATUS_INVALID_ARGUMENT, naming the entry) before writing anything.
void paged_prefill(const PagedPrefillArgs& args);

}  // namespace kv::cpu
