package io.kvasir.model.reference;

/**
 * Rotary position embedding as transformers computes it, in double precision.
 *
 * <p>Frequencies mirror {@code transformers/modeling_rope_utils.py}:
 * {@code _compute_default_rope_parameters} gives {@code inv_freq[i] = theta^(-2i/d)} for
 * {@code i < d/2} ({@code d} = head_dim), and {@code _compute_llama3_parameters} rescales them by
 * wavelength {@code w = 2 pi / inv_freq[i]}: with {@code L = original_max_position_embeddings},
 * frequencies with {@code w < L / high_freq_factor} stay, those with {@code w > L / low_freq_factor}
 * are divided by {@code factor}, and those in between become
 * {@code (1 - s) inv / factor + s inv} with {@code s = (L / w - low_freq_factor) /
 * (high_freq_factor - low_freq_factor)}. Neither scales the attention (attention_factor 1).
 *
 * <p>The rotation mirrors {@code apply_rotary_pos_emb} with {@code rotate_half} in
 * {@code modeling_llama.py}: channel {@code j < d/2} pairs with {@code j + d/2} (not with its
 * neighbour, as the original RoPE paper's interleaved form does); for angle
 * {@code a = position * inv_freq[j]}, {@code x'[j] = x[j] cos a - x[j + d/2] sin a} and
 * {@code x'[j + d/2] = x[j + d/2] cos a + x[j] sin a}. transformers evaluates angles, cos and sin
 * in fp32; here they are double, which differs from it by fp32 rounding only.
 */
final class Rope {
  private Rope() {}

  /** {@code theta^(-2i/d)}, i in [0, d/2). */
  static double[] defaultInvFreq(int headDim, double theta) {
    double[] inv = new double[headDim / 2];
    for (int i = 0; i < inv.length; i++) {
      inv[i] = 1.0 / Math.pow(theta, 2.0 * i / headDim);
    }
    return inv;
  }

  /** The llama3 rescaling of {@link #defaultInvFreq} (see the class comment). */
  static double[] llama3InvFreq(int headDim, double theta, double factor, double lowFreqFactor,
      double highFreqFactor, int originalMaxPositions) {
    double[] inv = defaultInvFreq(headDim, theta);
    double lowFreqWavelen = originalMaxPositions / lowFreqFactor;
    double highFreqWavelen = originalMaxPositions / highFreqFactor;
    for (int i = 0; i < inv.length; i++) {
      double wavelen = 2 * Math.PI / inv[i];
      if (wavelen < highFreqWavelen) {
        continue; // high frequency: unchanged
      }
      if (wavelen > lowFreqWavelen) {
        inv[i] /= factor; // low frequency: fully scaled
      } else {
        double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
      }
    }
    return inv;
  }

  static double[] invFreq(ReferenceConfig c) {
    return c.llama3()
        ? llama3InvFreq(c.headDim(), c.ropeTheta(), c.ropeFactor(), c.lowFreqFactor(), c.highFreqFactor(),
            c.originalMaxPositions())
        : defaultInvFreq(c.headDim(), c.ropeTheta());
  }

  /** Rotates {@code x[offset, offset + d)} in place for {@code position}. */
  static void rotate(double[] x, int offset, int headDim, long position, double[] invFreq) {
    int half = headDim / 2;
    for (int j = 0; j < half; j++) {
      double angle = position * invFreq[j];
      double cos = Math.cos(angle);
      double sin = Math.sin(angle);
      double a = x[offset + j];
      double b = x[offset + j + half];
      x[offset + j] = a * cos - b * sin;
      x[offset + j + half] = b * cos + a * sin;
    }
  }
}
