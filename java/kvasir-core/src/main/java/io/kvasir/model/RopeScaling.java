package io.kvasir.model;

/**
 * Llama 3.1 RoPE frequency scaling ({@code rope_type: "llama3"}), the only scaling Kvasir
 * supports; a {@link ModelConfig} without scaling holds null. transformers'
 * {@code _compute_llama3_parameters} divides the low frequencies (wavelength above
 * {@code originalMaxPositionEmbeddings / lowFreqFactor}) by {@code factor}, keeps the high ones
 * (wavelength below {@code originalMaxPositionEmbeddings / highFreqFactor}) and blends linearly in
 * between.
 *
 * @param factor                          divisor of the low frequencies (8 for Llama 3.1)
 * @param lowFreqFactor                   1 for Llama 3.1
 * @param highFreqFactor                  4 for Llama 3.1; greater than {@code lowFreqFactor}
 * @param originalMaxPositionEmbeddings   the pre-training context (8192 for Llama 3.1)
 */
public record RopeScaling(double factor, double lowFreqFactor, double highFreqFactor,
    int originalMaxPositionEmbeddings) {

  /** The type name in {@code config.json}. */
  public static final String LLAMA3 = "llama3";

  /** Llama 3.1 / 3.2's values. */
  public static RopeScaling llama31() {
    return new RopeScaling(8.0, 1.0, 4.0, 8192);
  }
}
