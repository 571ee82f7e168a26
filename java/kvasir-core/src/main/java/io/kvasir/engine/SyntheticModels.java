package io.kvasir.engine;

import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.ModelShape;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Shapes of real models with random weights made on the device ({@code synthetic:<preset>}), for
 * performance work: speed depends on shapes, lengths and dtypes, not on the weights' values.
 * The shapes are those of the published configs.
 */
public final class SyntheticModels {
  /** The prefix that names a synthetic model where a model directory is expected. */
  public static final String PREFIX = "synthetic:";

  private static final Map<String, ModelShape> PRESETS = new LinkedHashMap<>();

  static {
    // meta-llama/Llama-3.1-8B: 32 layers, GQA 32/8, llama3 RoPE scaling, untied.
    PRESETS.put("llama3-8b", new ModelShape(128256, 4096, 14336, 32, 32, 8, 128, 131072, 1e-5f, 500000f, "llama3",
        8f, 1f, 4f, 8192, false, false, false, DType.BF16));
    // meta-llama/Llama-3.2-1B: 16 layers, head_dim 64, tied embeddings, RoPE factor 32.
    PRESETS.put("llama3-1b", new ModelShape(128256, 2048, 8192, 16, 32, 8, 64, 131072, 1e-5f, 500000f, "llama3",
        32f, 1f, 4f, 8192, false, false, true, DType.BF16));
    // Qwen/Qwen3-8B: 36 layers, q/k norm, head_dim 128, untied.
    PRESETS.put("qwen3-8b", new ModelShape(151936, 4096, 12288, 36, 32, 8, 128, 40960, 1e-6f, 1000000f, "default",
        1f, 1f, 1f, 0, true, false, false, DType.BF16));
  }

  private SyntheticModels() {}

  /** Whether {@code model} names a synthetic model ({@code synthetic:...}). */
  public static boolean isSynthetic(String model) {
    return model.startsWith(PREFIX);
  }

  /**
   * The shape of {@code synthetic:<preset>}.
   *
   * @throws IllegalArgumentException naming the known presets
   */
  public static ModelShape shape(String model) {
    String name = model.startsWith(PREFIX) ? model.substring(PREFIX.length()) : model;
    ModelShape s = PRESETS.get(name);
    if (s == null) {
      throw new IllegalArgumentException("unknown synthetic model \"" + name + "\"; presets: " + PRESETS.keySet());
    }
    return s;
  }

  /** Preset names. */
  public static java.util.Set<String> presets() {
    return PRESETS.keySet();
  }
}
