// CPU backend of the Quest operations: the reference semantics. Arguments arrive checked by
// core/api_paged_quest.cc; indices read from memory (page ids, valid_tokens, kv_lens) are
// checked here before anything is written, so a bad index fails the call with no output.
#pragma once

#include "core/paged_args.h"

namespace kv::cpu {

// Channel-wise min and max (IEEE totalOrder on the bits, core/paged_quest_order.h) of K over
// the first valid_tokens[i] rows of page pages[i], per KV head.
void page_summary_update(const PageSummaryArgs& args);
// Scores every non-newest page, keeps the top_k - 1 best plus the newest, ascending.
void quest_select(const QuestSelectArgs& args);

}  // namespace kv::cpu
