// RoPE inverse frequencies, computed once on the host in double precision as Hugging Face
// transformers computes them (modeling_rope_utils: the default theta^(-2i/d), and the Llama 3.1
// scaling of _compute_llama3_parameters), then rounded to fp32.
#pragma once

#include <vector>

#include "kvasir/kvasir.h"

namespace kv::model {

// inv_freq[i] for i in [0, head_dim / 2).
std::vector<float> rope_inv_freq(const kv_model_config& cfg);

}  // namespace kv::model
