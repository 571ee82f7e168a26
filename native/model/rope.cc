#include "model/rope.h"

#include <cmath>

namespace kv::model {

std::vector<float> rope_inv_freq(const kv_model_config& cfg) {
  const int half = cfg.head_dim / 2;
  std::vector<float> out(half);
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < half; ++i) {
    // transformers: 1 / theta ** (arange(0, dim, 2) / dim), the exponent in fp32 arithmetic;
    // we evaluate in double and round once.
    double inv = 1.0 / std::pow(static_cast<double>(cfg.rope_theta), (2.0 * i) / cfg.head_dim);
    if (cfg.rope_scaling == KV_ROPE_LLAMA3) {
      // Wavelengths longer than original_context / low_freq_factor are divided by factor,
      // shorter than original_context / high_freq_factor kept, and the band between
      // interpolated smoothly in 1 / wavelength.
      const double factor = cfg.rope_factor, low = cfg.rope_low_freq_factor, high = cfg.rope_high_freq_factor;
      const double old_ctx = cfg.rope_original_max_positions;
      const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
      const double wavelen = 2.0 * pi / inv;
      if (wavelen > low_wavelen) {
        inv = inv / factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - low) / (high - low);
        inv = (1.0 - smooth) * inv / factor + smooth * inv;
      }
    }
    out[i] = static_cast<float>(inv);
  }
  return out;
}

}  // namespace kv::model
