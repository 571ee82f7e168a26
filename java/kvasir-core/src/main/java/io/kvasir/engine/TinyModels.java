package io.kvasir.engine;

import io.kvasir.model.Architecture;
import io.kvasir.model.ByteTokenizerFiles;
import io.kvasir.model.TinyCheckpoints;
import io.kvasir.model.TinyModelSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * {@code tiny:<architecture>}: the project's small random-weight demo models (a real checkpoint
 * and a byte-level tokenizer, written on first use under the cache directory). They make the
 * README's first command work with no download until the trained reference model ships; what
 * they generate is noise.
 */
public final class TinyModels {
  /** The prefix that names a tiny demo model where a model directory is expected. */
  public static final String PREFIX = "tiny:";

  private TinyModels() {}

  public static boolean isTiny(String model) {
    return model.startsWith(PREFIX);
  }

  /** {@code -Dkvasir.cache} or {@code $KVASIR_CACHE}, then {@code models}; default {@code ~/.cache/kvasir/models}. */
  static Path cacheRoot() {
    String env = System.getProperty("kvasir.cache", System.getenv("KVASIR_CACHE"));
    Path root = env != null && !env.isEmpty() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "kvasir");
    return root.resolve("models");
  }

  /**
   * The directory of {@code tiny:<architecture>}, written there on first use.
   *
   * @throws IllegalArgumentException naming the architectures when the name is unknown
   */
  public static Path resolve(String model) throws IOException {
    String name = model.substring(PREFIX.length()).toLowerCase(Locale.ROOT);
    Architecture arch = Arrays.stream(Architecture.values()).filter(a -> a.modelType().equals(name)).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("unknown tiny model \"" + name + "\"; architectures: "
            + Arrays.stream(Architecture.values()).map(Architecture::modelType).toList()));
    Path dir = cacheRoot().resolve("tiny-" + arch.modelType());
    TinyModelSpec spec = TinyModelSpec.builder(arch).optVocabSize(ByteTokenizerFiles.VOCAB_SIZE)
        .optBosTokenId(ByteTokenizerFiles.BOS_ID).optEosTokenId(ByteTokenizerFiles.EOS_ID).build();
    TinyCheckpoints.writeIfAbsent(spec, dir);
    if (!Files.exists(dir.resolve("tokenizer.json"))) {
      ByteTokenizerFiles.write(dir);
    }
    return dir;
  }
}
