// CUDA backend of the quantized-KV operations (Kitty, KIVI-2): plain C++ declarations,
// implemented in native/cuda/quant_kv.cu. Bad indices read from device memory are recorded in
// the stream's DeviceErrorRecord and fail the next kv_stream_synchronize.
#pragma once

#include <cstdint>

#include "core/quant_args.h"

namespace kv::cuda {

struct Stream;

void quant_pack(Stream* stream, const QuantPackArgs& args);
void quant_unpack(Stream* stream, const QuantUnpackArgs& args);
void quant_decode(Stream* stream, const QuantDecodeArgs& args);
// Workspace that lets quant_decode split as much as it wants (an upper bound over num_kv_heads).
uint64_t quant_decode_workspace_bytes(int32_t device, int32_t batch, int32_t num_q_heads, int32_t head_dim,
                                      int32_t max_kv_len);

}  // namespace kv::cuda
