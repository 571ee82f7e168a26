package io.kvasir.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A missing or malformed tokenizer.json is refused with a message that names the file. */
class TokenizerFilesTest {
  @TempDir
  Path dir;

  private void assertNamesFile(Path file, String expectedWords) {
    CheckpointException e = assertThrows(CheckpointException.class, () -> Tokenizer.load(dir));
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    assertTrue(e.getMessage().contains(expectedWords), e.getMessage());
  }

  @Test
  void missingFile() {
    assertNamesFile(dir.resolve("tokenizer.json"), "not found");
  }

  @Test
  void truncatedFile() throws IOException {
    String real = Files.readString(TokenizerCache.file("qwen3/tokenizer.json"));
    Files.writeString(dir.resolve("tokenizer.json"), real.substring(0, real.length() / 2));
    assertNamesFile(dir.resolve("tokenizer.json"), "malformed");
  }

  @Test
  void notJson() throws IOException {
    Files.writeString(dir.resolve("tokenizer.json"), "version: 1\n");
    assertNamesFile(dir.resolve("tokenizer.json"), "malformed");
  }

  @Test
  void jsonThatIsNotATokenizer() throws IOException {
    // Valid JSON with a vocabulary, which the scan accepts, but no model type the library knows.
    Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"type\": \"Nonsense\", \"vocab\": {\"a\": 0}}}");
    assertNamesFile(dir.resolve("tokenizer.json"), "malformed");
  }

  @Test
  void loadsFromTheFileToo() throws IOException {
    Path file = TokenizerCache.file("llama3/tokenizer.json");
    try (Tokenizer t = Tokenizer.load(file)) {
      assertEquals(file, t.file());
      assertEquals(TokenizerCache.tokenizer("llama3").vocabSize(), t.vocabSize());
    }
  }
}
