package io.kvasir.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** BOS/EOS resolution and sampling defaults from generation_config.json and tokenizer_config.json. */
class SpecialTokensTest {
  @TempDir
  Path dir;

  @ParameterizedTest
  @ValueSource(strings = {"qwen3", "llama3", "llama3_1"})
  void tokenizerConfigAloneGivesWhatTheJavaScriptTokenizerResolves(String name) throws IOException {
    SpecialTokens s = SpecialTokens.load(TokenizerCache.modelDir(name), TokenizerCache.tokenizer(name));
    JsonNode expected = TokenizerCache.fixture(name + ".ids.json").get("special");
    assertEquals(optionalText(expected.get("bos_token")), s.bosToken());
    assertEquals(expected.get("bos_token_id").isNull() ? OptionalInt.empty()
        : OptionalInt.of(expected.get("bos_token_id").intValue()), s.bosId());
    assertEquals(optionalText(expected.get("eos_token")), s.eosToken());
    assertArrayEquals(new int[] {expected.get("eos_token_id").intValue()}, s.eosIds());
    assertTrue(s.isEos(expected.get("eos_token_id").intValue()));
  }

  private static Optional<String> optionalText(JsonNode n) {
    return n.isNull() ? Optional.empty() : Optional.of(n.asText());
  }

  /** A model directory with the real Llama 3.1 tokenizer and the given JSON files. */
  private Tokenizer llamaDir(String tokenizerConfig, String generationConfig) throws IOException {
    Files.createSymbolicLink(dir.resolve("tokenizer.json"), TokenizerCache.file("llama3_1/tokenizer.json"));
    if (tokenizerConfig != null) {
      Files.writeString(dir.resolve("tokenizer_config.json"), tokenizerConfig);
    }
    if (generationConfig != null) {
      Files.writeString(dir.resolve("generation_config.json"), generationConfig);
    }
    return TokenizerCache.tokenizer("llama3_1");
  }

  @Test
  void generationConfigWinsAndMayListSeveralEosIds() throws IOException {
    Tokenizer t = TokenizerCache.tokenizer("llama3_1");
    int bos = t.tokenId("<|begin_of_text|>").getAsInt();
    int endOfText = t.tokenId("<|end_of_text|>").getAsInt();
    int eot = t.tokenId("<|eot_id|>").getAsInt();
    int other = eot - 1; // a reserved special token, standing in for <|eom_id|>
    llamaDir("{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\"}",
        "{\"bos_token_id\": " + bos + ", \"eos_token_id\": [" + endOfText + ", " + other + ", " + eot + ", " + endOfText
        + "], \"temperature\": 0.6, \"top_p\": 0.9}");
    SpecialTokens s = SpecialTokens.load(dir, t);
    assertArrayEquals(new int[] {endOfText, other, eot}, s.eosIds(), "file order, duplicates dropped");
    assertEquals(OptionalInt.of(bos), s.bosId());
    assertEquals(Optional.of("<|eot_id|>"), s.eosToken(), "templates still get the tokenizer_config text");
    assertFalse(s.isEos(t.encodeNoSpecial("hello")[0]));
    assertTrue(s.isEos(other));
  }

  @Test
  void singleEosIdAndAddedTokenObjects() throws IOException {
    Tokenizer t = llamaDir("{\"bos_token\": {\"content\": \"<|begin_of_text|>\", \"lstrip\": false},"
        + " \"eos_token\": {\"__type\": \"AddedToken\", \"content\": \"<|eot_id|>\"}}", "{\"eos_token_id\": 128001}");
    SpecialTokens s = SpecialTokens.load(dir, t);
    assertArrayEquals(new int[] {t.tokenId("<|end_of_text|>").getAsInt()}, s.eosIds());
    assertEquals(Optional.of("<|begin_of_text|>"), s.bosToken());
    assertEquals(OptionalInt.of(t.tokenId("<|begin_of_text|>").getAsInt()), s.bosId(), "from the token text");
    assertEquals(Optional.of("<|eot_id|>"), s.eosToken());
  }

  @Test
  void noFilesNoSpecialTokens() throws IOException {
    Tokenizer t = llamaDir(null, null);
    SpecialTokens s = SpecialTokens.load(dir, t);
    assertEquals(OptionalInt.empty(), s.bosId());
    assertArrayEquals(new int[0], s.eosIds());
    assertEquals(GenerationDefaults.NONE, GenerationDefaults.load(dir));
  }

  @Test
  void errorsNameTheFileAndTheField() throws IOException {
    Tokenizer t = llamaDir("{\"eos_token\": \"<|no_such_token|> and more\"}", "{\"eos_token_id\": [1, \"x\"]}");
    CheckpointException e = assertThrows(CheckpointException.class, () -> SpecialTokens.load(dir, t));
    assertTrue(e.getMessage().contains("generation_config.json") && e.getMessage().contains("eos_token_id"), e.getMessage());

    Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": 999999}");
    e = assertThrows(CheckpointException.class, () -> SpecialTokens.load(dir, t));
    assertTrue(e.getMessage().contains("999999") && e.getMessage().contains("outside the vocabulary"), e.getMessage());

    Files.delete(dir.resolve("generation_config.json"));
    e = assertThrows(CheckpointException.class, () -> SpecialTokens.load(dir, t));
    assertTrue(e.getMessage().contains("tokenizer_config.json") && e.getMessage().contains("<|no_such_token|>"), e.getMessage());

    Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": ");
    e = assertThrows(CheckpointException.class, () -> SpecialTokens.load(dir, t));
    assertTrue(e.getMessage().contains("tokenizer_config.json") && e.getMessage().contains("malformed"), e.getMessage());
  }

  @Test
  void samplingDefaults() throws IOException {
    Files.writeString(dir.resolve("generation_config.json"),
        "{\"do_sample\": true, \"temperature\": 0.6, \"top_p\": 0.95, \"top_k\": 20, \"min_p\": 0, \"eos_token_id\": 1}");
    GenerationDefaults g = GenerationDefaults.load(dir);
    assertEquals(OptionalDouble.of(0.6), g.temperature());
    assertEquals(OptionalDouble.of(0.95), g.topP());
    assertEquals(OptionalInt.of(20), g.topK());
    assertEquals(OptionalDouble.of(0.0), g.minP());
    assertEquals(OptionalDouble.empty(), g.repetitionPenalty());
    assertFalse(g.greedy());

    Files.writeString(dir.resolve("generation_config.json"), "{\"do_sample\": false, \"temperature\": 0.6}");
    assertTrue(GenerationDefaults.load(dir).greedy());

    Files.writeString(dir.resolve("generation_config.json"), "{\"top_p\": 1.5}");
    CheckpointException e = assertThrows(CheckpointException.class, () -> GenerationDefaults.load(dir));
    assertTrue(e.getMessage().contains("generation_config.json") && e.getMessage().contains("top_p"), e.getMessage());

    Files.writeString(dir.resolve("generation_config.json"), "{\"top_k\": \"many\"}");
    e = assertThrows(CheckpointException.class, () -> GenerationDefaults.load(dir));
    assertTrue(e.getMessage().contains("top_k"), e.getMessage());
  }
}
