// CUDA backend of the paged KV append and paged decode: plain C++ declarations (no CUDA
// types), implemented in native/cuda/paged_decode.cu. Bad indices read from device memory
// are recorded in the stream's DeviceErrorRecord and fail the next kv_stream_synchronize.
#pragma once

#include <cstdint>

#include "core/paged_args.h"

namespace kv::cuda {

struct Stream;

void paged_append(Stream* stream, const PagedAppendArgs& args);
void paged_decode(Stream* stream, const PagedDecodeArgs& args);
// Workspace that lets paged_decode split as much as it wants: an upper bound over every
// num_kv_heads and page size (the ABI's workspace query does not name them).
uint64_t paged_decode_workspace_bytes(int32_t device, int32_t batch, int32_t num_q_heads, int32_t head_dim,
                                      int32_t max_kv_len);

}  // namespace kv::cuda
