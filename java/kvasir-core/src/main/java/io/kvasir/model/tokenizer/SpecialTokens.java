package io.kvasir.model.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * The BOS and EOS tokens of a model: ids for generation (stop on any of {@link #eosIds}) and
 * texts for chat templates ({@code bos_token}, {@code eos_token}).
 *
 * <p>Ids come from {@code generation_config.json} ({@code bos_token_id}; {@code eos_token_id} an
 * int or a list, as instruct models list several stop tokens) when it has them, which is what
 * transformers' {@code generate} uses; otherwise from the {@code bos_token} / {@code eos_token}
 * of {@code tokenizer_config.json} (a string or an AddedToken object {@code {"content": ...}})
 * resolved to ids through the tokenizer. Texts always come from {@code tokenizer_config.json}.
 *
 * @param bosId the beginning-of-sequence id, if the model has one (Qwen3 has none)
 * @param bosToken its text for chat templates, if {@code tokenizer_config.json} names one
 * @param eosIds the end-of-sequence ids, in file order, no duplicates; may be empty
 * @param eosToken the EOS text for chat templates, if {@code tokenizer_config.json} names one
 */
public record SpecialTokens(OptionalInt bosId, Optional<String> bosToken, int[] eosIds,
    Optional<String> eosToken) {
  public static final String GENERATION_CONFIG = "generation_config.json";
  public static final String TOKENIZER_CONFIG = "tokenizer_config.json";

  public SpecialTokens {
    eosIds = eosIds.clone();
  }

  @Override
  public int[] eosIds() {
    return eosIds.clone();
  }

  /** Whether {@code id} ends generation. */
  public boolean isEos(int id) {
    for (int e : eosIds) {
      if (e == id) {
        return true;
      }
    }
    return false;
  }

  /**
   * Resolves the special tokens of a model directory; both JSON files are optional.
   *
   * @throws CheckpointException for a malformed file, a field of the wrong type, or a token text
   *     or id the tokenizer does not have (naming the file and the field)
   */
  public static SpecialTokens load(Path modelDir, Tokenizer tokenizer) throws IOException {
    JsonFile generation = JsonFile.readOptional(modelDir, GENERATION_CONFIG);
    JsonFile config = JsonFile.readOptional(modelDir, TOKENIZER_CONFIG);
    Optional<String> bosToken = tokenText(config, "bos_token");
    Optional<String> eosToken = tokenText(config, "eos_token");

    OptionalInt bosId = generation.optInt("bos_token_id");
    if (bosId.isPresent()) {
      checkId(generation, "bos_token_id", bosId.getAsInt(), tokenizer);
    } else if (bosToken.isPresent()) {
      bosId = OptionalInt.of(resolve(config, "bos_token", bosToken.get(), tokenizer));
    }

    int[] eosIds = ids(generation, "eos_token_id", tokenizer);
    if (eosIds.length == 0 && eosToken.isPresent()) {
      eosIds = new int[] {resolve(config, "eos_token", eosToken.get(), tokenizer)};
    }
    return new SpecialTokens(bosId, bosToken, eosIds, eosToken);
  }

  /** A token field of tokenizer_config.json: a string, or an AddedToken object with "content". */
  static Optional<String> tokenText(JsonFile config, String field) {
    JsonNode v = config.get(field);
    if (v == null) {
      return Optional.empty();
    }
    if (v.isTextual()) {
      return Optional.of(v.textValue());
    }
    if (v.isObject() && v.get("content") != null && v.get("content").isTextual()) {
      return Optional.of(v.get("content").textValue());
    }
    throw config.error(field, "expected a string or an object with a \"content\" string, found " + v);
  }

  private static int resolve(JsonFile config, String field, String text, Tokenizer tokenizer) {
    OptionalInt id = tokenizer.tokenId(text);
    if (id.isEmpty()) {
      throw config.error(field, "token \"" + text + "\" is not a single token of " + tokenizer.file());
    }
    return id.getAsInt();
  }

  private static int[] ids(JsonFile file, String field, Tokenizer tokenizer) {
    JsonNode v = file.get(field);
    if (v == null) {
      return new int[0];
    }
    Set<Integer> ids = new LinkedHashSet<>();
    if (v.isArray()) {
      for (JsonNode e : v) {
        if (!e.isIntegralNumber() || !e.canConvertToInt()) {
          throw file.error(field, "expected integers, found " + v);
        }
        ids.add(e.intValue());
      }
    } else if (v.isIntegralNumber() && v.canConvertToInt()) {
      ids.add(v.intValue());
    } else {
      throw file.error(field, "expected an integer or a list of integers, found " + v);
    }
    for (int id : ids) {
      checkId(file, field, id, tokenizer);
    }
    return ids.stream().mapToInt(Integer::intValue).toArray();
  }

  private static void checkId(JsonFile file, String field, int id, Tokenizer tokenizer) {
    if (id < 0 || id >= tokenizer.vocabSize()) {
      throw file.error(field, "id " + id + " is outside the vocabulary [0, " + tokenizer.vocabSize()
          + ") of " + tokenizer.file());
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof SpecialTokens s && bosId.equals(s.bosId) && bosToken.equals(s.bosToken)
        && Arrays.equals(eosIds, s.eosIds) && eosToken.equals(s.eosToken);
  }

  @Override
  public int hashCode() {
    return 31 * (31 * (31 * bosId.hashCode() + bosToken.hashCode()) + Arrays.hashCode(eosIds))
        + eosToken.hashCode();
  }

  @Override
  public String toString() {
    return "SpecialTokens[bos=" + bosToken.orElse("none") + " " + bosId + ", eos=" + eosToken.orElse("none")
        + " " + Arrays.toString(eosIds) + "]";
  }
}
