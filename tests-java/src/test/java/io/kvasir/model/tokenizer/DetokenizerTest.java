package io.kvasir.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Streaming detokenization: never a broken character, and the pieces add up to the full decode. */
class DetokenizerTest {
  static Stream<Arguments> texts() {
    List<Arguments> out = new ArrayList<>();
    for (String name : TokenizerTest.NAMES) {
      TokenizerCache.fixture(name + ".ids.json").get("cases")
          .forEach(c -> out.add(Arguments.of(name, c.get("label").asText(), c.get("text").asText())));
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0}: {1}")
  @MethodSource("texts")
  void streamedPiecesConcatenateToTheFullDecode(String name, String label, String text) {
    Tokenizer t = TokenizerCache.tokenizer(name);
    int[] ids = t.encode(text);
    for (boolean skipSpecial : new boolean[] {false, true}) {
      Detokenizer d = t.detokenizer(new int[0], skipSpecial);
      StringBuilder streamed = new StringBuilder();
      for (int id : ids) {
        String piece = d.add(id);
        assertFalse(piece.contains("\uFFFD"), label + ": a piece split a character: " + piece);
        streamed.append(piece);
      }
      streamed.append(d.flush());
      assertEquals(t.decode(ids, skipSpecial), streamed.toString(), label + (skipSpecial ? " (skip special)" : ""));
      assertEquals(0, d.pendingIds());
    }
  }

  @Test
  void multiByteCharactersAreHeldBackUntilComplete() {
    // The test data must really split characters over tokens, or the hold-back is never exercised.
    Tokenizer t = TokenizerCache.tokenizer("llama3");
    int split = 0;
    for (String s : List.of("👨‍👩‍👧‍👦", "🇯🇵", "🦀", "สวัสดี", "∑")) {
      int[] ids = t.encodeNoSpecial(s);
      Detokenizer d = t.detokenizer();
      StringBuilder streamed = new StringBuilder();
      for (int id : ids) {
        boolean partial = t.decode(new int[] {id}).contains("\uFFFD");
        String piece = d.add(id);
        if (partial) {
          split++;
        }
        streamed.append(piece);
      }
      assertEquals(s, streamed.toString(), "complete without flush");
      assertEquals("", d.flush());
    }
    assertTrue(split > 0, "no token of the test strings carried a partial character");
  }

  @Test
  void flushEmitsAnIncompleteCharacterAsReplacement() {
    for (String name : TokenizerTest.NAMES) {
      Tokenizer t = TokenizerCache.tokenizer(name);
      // The first of these whose tokens end mid-character somewhere (the tokenizers differ).
      int[] ids = null;
      int cut = 0;
      for (String s : List.of("a🦀", "a👨‍👩‍👧‍👦", "a𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a\uD83E\uDEE8")) {
        int[] candidate = t.encodeNoSpecial(s);
        for (int c = candidate.length - 1; c > 0 && cut == 0; c--) {
          if (t.decode(Arrays.copyOf(candidate, c)).endsWith("\uFFFD")) {
            ids = candidate;
            cut = c;
          }
        }
        if (cut > 0) {
          break;
        }
      }
      assertTrue(cut > 0, name + ": none of the test strings splits a character over tokens");
      Detokenizer d = t.detokenizer();
      StringBuilder out = new StringBuilder();
      for (int i = 0; i < cut; i++) {
        out.append(d.add(ids[i]));
      }
      assertFalse(out.toString().contains("\uFFFD"), "held back while incomplete");
      assertTrue(d.pendingIds() > 0);
      out.append(d.flush());
      assertEquals(t.decode(Arrays.copyOf(ids, cut)), out.toString());
      assertTrue(out.toString().endsWith("\uFFFD"));
    }
  }

  @Test
  void continuationAfterAPromptEmitsOnlyTheNewText() {
    for (String name : TokenizerTest.NAMES) {
      Tokenizer t = TokenizerCache.tokenizer(name);
      int[] prompt = t.encode("The capital of Norway is");
      int[] continuation = t.encodeNoSpecial(" Oslo, 🇳🇴 — about 700 000 people.");
      int[] all = new int[prompt.length + continuation.length];
      System.arraycopy(prompt, 0, all, 0, prompt.length);
      System.arraycopy(continuation, 0, all, prompt.length, continuation.length);
      Detokenizer d = t.detokenizer(prompt, false);
      StringBuilder out = new StringBuilder();
      for (int id : continuation) {
        out.append(d.add(id));
      }
      out.append(d.flush());
      assertEquals(t.decode(all).substring(t.decode(prompt).length()), out.toString(), name);
    }
  }
}
