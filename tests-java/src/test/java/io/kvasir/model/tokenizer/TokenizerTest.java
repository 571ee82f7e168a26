package io.kvasir.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The real Qwen3, Llama 3 and Llama 3.1 tokenizers against the ids of an independent
 * implementation (the JavaScript tokenizer of @lenml/tokenizers, tools/tokenizers/expected_ids.mjs).
 */
class TokenizerTest {
  static final List<String> NAMES = List.of("qwen3", "llama3", "llama3_1");

  static Stream<Arguments> cases() {
    List<Arguments> out = new ArrayList<>();
    for (String name : NAMES) {
      for (JsonNode c : TokenizerCache.fixture(name + ".ids.json").get("cases")) {
        out.add(Arguments.of(name, c.get("label").asText(), c.get("text").asText(),
            TokenizerCache.ints(c.get("ids")), TokenizerCache.ints(c.get("ids_no_special"))));
      }
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0}: {1}")
  @MethodSource("cases")
  void encodeMatchesTheJavaScriptTokenizer(String name, String label, String text, int[] ids, int[] idsNoSpecial) {
    Tokenizer t = TokenizerCache.tokenizer(name);
    assertArrayEquals(ids, t.encode(text), name + " encode: " + label);
    assertArrayEquals(idsNoSpecial, t.encodeNoSpecial(text), name + " encodeNoSpecial: " + label);
  }

  @ParameterizedTest(name = "{0}: {1}")
  @MethodSource("cases")
  void decodeInvertsEncode(String name, String label, String text, int[] ids, int[] idsNoSpecial) {
    Tokenizer t = TokenizerCache.tokenizer(name);
    // Byte-level BPE keeps every byte; Qwen3's tokenizer.json normalizes to NFC first, so that
    // is what comes back (combining marks composed), and nothing else changes.
    boolean nfc = name.equals("qwen3");
    String expected = nfc ? Normalizer.normalize(text, Normalizer.Form.NFC) : text;
    assertEquals(expected, t.decode(t.encodeNoSpecial(text)), label);
    String full = t.decode(ids);
    assertTrue(full.endsWith(expected), label + ": with special tokens: " + full);
    String added = full.substring(0, full.length() - expected.length());
    assertTrue(added.isEmpty() || added.equals("<|begin_of_text|>"), label + ": only BOS may be added, got " + added);
  }

  @ParameterizedTest
  @ValueSource(strings = {"qwen3", "llama3", "llama3_1"})
  void bosComesFromThePostProcessorOnly(String name) {
    Tokenizer t = TokenizerCache.tokenizer(name);
    JsonNode special = TokenizerCache.fixture(name + ".ids.json").get("special");
    int[] withSpecial = t.encode("hi");
    int[] without = t.encodeNoSpecial("hi");
    // Llama 3.1's tokenizer.json prepends <|begin_of_text|> (TemplateProcessing); Llama 3 base and Qwen3 add nothing.
    boolean addsBos = name.equals("llama3_1");
    assertEquals(without.length + (addsBos ? 1 : 0), withSpecial.length);
    if (addsBos) {
      assertEquals(special.get("bos_token_id").intValue(), withSpecial[0]);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"qwen3", "llama3", "llama3_1"})
  void vocabularyAndSpecialTokenIdsMatchTheJavaScriptTokenizer(String name) {
    Tokenizer t = TokenizerCache.tokenizer(name);
    JsonNode fixture = TokenizerCache.fixture(name + ".ids.json");
    assertEquals(fixture.get("vocab_size").intValue(), t.vocabSize());
    JsonNode special = fixture.get("special");
    for (String which : List.of("bos", "eos")) {
      JsonNode token = special.get(which + "_token");
      if (!token.isNull()) {
        OptionalInt id = t.tokenId(token.asText());
        assertEquals(OptionalInt.of(special.get(which + "_token_id").intValue()), id, which);
        assertTrue(t.isSpecial(id.getAsInt()), which + " is a special token");
        assertEquals("", t.decode(new int[] {id.getAsInt()}, true), "skipped when decoding without specials");
      }
    }
    assertEquals(OptionalInt.empty(), t.tokenId("two words"));
    OptionalInt plain = t.tokenId("hello");
    assertTrue(plain.isPresent(), "a word of the vocabulary is one token");
    assertArrayEquals(new int[] {plain.getAsInt()}, t.encodeNoSpecial("hello"));
    assertFalse(t.isSpecial(plain.getAsInt()));
  }

  @Test
  void decodeRefusesIdsOutsideTheVocabulary() {
    Tokenizer t = TokenizerCache.tokenizer("qwen3");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> t.decode(new int[] {1, t.vocabSize()}));
    assertTrue(e.getMessage().contains("index 1"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {-1}));
  }

  @Test
  void closeIsIdempotentAndLaterUseFails() throws IOException {
    Tokenizer t = Tokenizer.load(TokenizerCache.modelDir("llama3"));
    int[] ids = t.encode("closing time");
    t.close();
    t.close();
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> t.encode("again"));
    assertTrue(e.getMessage().contains("closed"), e.getMessage());
    assertThrows(IllegalStateException.class, () -> t.decode(ids));
  }

  @Test
  void loadingForcesDjlOfflineModeUnlessTheUserChoseOtherwise() {
    TokenizerCache.tokenizer("qwen3");
    if (System.getenv("DJL_OFFLINE") == null) {
      assertEquals("true", System.getProperty("ai.djl.offline"),
          "DJL must use its bundled CPU library, never download a CUDA build");
    }
  }
}
