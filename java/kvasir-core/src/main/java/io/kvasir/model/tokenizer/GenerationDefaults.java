package io.kvasir.model.tokenizer;

import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * The sampling defaults a model ships in {@code generation_config.json}; each is empty when the
 * file or the field is absent, so a caller layers its own defaults under them and the request's
 * values over them. As in transformers, {@code do_sample: false} means greedy whatever the
 * other fields say: {@link #greedy()} tells.
 *
 * @param doSample {@code do_sample}
 * @param temperature {@code temperature}
 * @param topP {@code top_p}
 * @param topK {@code top_k}
 * @param minP {@code min_p}
 * @param repetitionPenalty {@code repetition_penalty}
 */
public record GenerationDefaults(Optional<Boolean> doSample, OptionalDouble temperature,
    OptionalDouble topP, OptionalInt topK, OptionalDouble minP, OptionalDouble repetitionPenalty) {

  /** No defaults: what a directory without {@code generation_config.json} gives. */
  public static final GenerationDefaults NONE = new GenerationDefaults(Optional.empty(),
      OptionalDouble.empty(), OptionalDouble.empty(), OptionalInt.empty(), OptionalDouble.empty(),
      OptionalDouble.empty());

  /** Whether the file asks for greedy decoding ({@code do_sample: false}). */
  public boolean greedy() {
    return doSample.isPresent() && !doSample.get();
  }

  /**
   * Reads {@code generation_config.json} of a model directory, if present.
   *
   * @throws CheckpointException for malformed JSON or a field of the wrong type or range
   */
  public static GenerationDefaults load(Path modelDir) throws IOException {
    JsonFile f = JsonFile.readOptional(modelDir, SpecialTokens.GENERATION_CONFIG);
    OptionalDouble temperature = f.optDouble("temperature");
    OptionalDouble topP = f.optDouble("top_p");
    OptionalInt topK = f.optInt("top_k");
    OptionalDouble minP = f.optDouble("min_p");
    OptionalDouble repetitionPenalty = f.optDouble("repetition_penalty");
    if (temperature.isPresent() && temperature.getAsDouble() < 0) {
      throw f.error("temperature", "must be >= 0, found " + temperature.getAsDouble());
    }
    if (topP.isPresent() && (topP.getAsDouble() <= 0 || topP.getAsDouble() > 1)) {
      throw f.error("top_p", "must be in (0, 1], found " + topP.getAsDouble());
    }
    if (topK.isPresent() && topK.getAsInt() < 0) {
      throw f.error("top_k", "must be >= 0 (0 disables it), found " + topK.getAsInt());
    }
    if (minP.isPresent() && (minP.getAsDouble() < 0 || minP.getAsDouble() > 1)) {
      throw f.error("min_p", "must be in [0, 1], found " + minP.getAsDouble());
    }
    if (repetitionPenalty.isPresent() && repetitionPenalty.getAsDouble() <= 0) {
      throw f.error("repetition_penalty", "must be > 0, found " + repetitionPenalty.getAsDouble());
    }
    return new GenerationDefaults(f.optBoolean("do_sample"), temperature, topP, topK, minP,
        repetitionPenalty);
  }
}
