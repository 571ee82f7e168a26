// CPU backend of the paged KV append and paged decode (the reference semantics of
// kv_paged_append_async and kv_paged_decode_async). Arguments arrive validated by
// core/api_paged_decode.cc except what only the data can tell (slots, page ids, kv_lens,
// selections): those are checked here before anything is written, and fail the call.
#pragma once

#include "core/paged_args.h"

namespace kv::cpu {

void paged_append(const PagedAppendArgs& args);
void paged_decode(const PagedDecodeArgs& args);

}  // namespace kv::cpu
