// CPU backend of the quantized-KV operations (kv_quant_pack/unpack/decode_async): the reference
// semantics of the CUDA kernels. Arguments arrive validated by core/api_quant_kv.cc except what
// only the data can tell (page and block ids, counts, kv_lens, selections): those are checked
// here before anything is written, and fail the call.
#pragma once

#include "core/quant_args.h"

namespace kv::cpu {

void quant_pack(const QuantPackArgs& args);
void quant_unpack(const QuantUnpackArgs& args);
void quant_decode(const QuantDecodeArgs& args);
// Dequantizes (block, head) of q into k and v [G][D] fp32 (the values decode attends).
void quant_dequantize_head(const quant::QuantKv& q, int64_t block, int32_t head, float* k, float* v);

}  // namespace kv::cpu
