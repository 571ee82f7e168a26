// CUDA backend of the Quest operations, as seen from the core (no CUDA types). Implemented in
// native/cuda/paged_quest.cu; throws kv::Error on launch failures. Bad indices read on the device
// go to the stream's error record: page ids as kDeviceErrorPageIdOutOfRange, valid_tokens outside
// [1, P] and kv_lens outside [0, max_kv_len] as kDeviceErrorKvLenOutOfRange.
#pragma once

#include "core/paged_args.h"

namespace kv::cuda {

struct Stream;

void page_summary_update(Stream* stream, const PageSummaryArgs& args);
// Needs args.workspace of quest_select_workspace_bytes_for(batch, num_kv_heads, max pages).
void quest_select(Stream* stream, const QuestSelectArgs& args);

}  // namespace kv::cuda
