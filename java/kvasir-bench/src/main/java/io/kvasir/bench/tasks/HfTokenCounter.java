package io.kvasir.bench.tasks;

import io.kvasir.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Exact counts with a model's Hugging Face tokenizer: {@link Tokenizer#encodeNoSpecial}, so BOS
 * and other post-processor additions are not counted (the chat template supplies them).
 */
public final class HfTokenCounter implements TokenCounter, AutoCloseable {
  private final Tokenizer tokenizer;
  private final boolean owned;

  /** Counts with a tokenizer the caller keeps and closes. */
  public HfTokenCounter(Tokenizer tokenizer) {
    this(tokenizer, false);
  }

  private HfTokenCounter(Tokenizer tokenizer, boolean owned) {
    this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
    this.owned = owned;
  }

  /**
   * Loads {@code tokenizer.json} from a model directory, or the file itself; {@link #close()} frees it.
   *
   * @throws io.kvasir.model.CheckpointException naming the file when it is missing or malformed
   */
  public static HfTokenCounter load(Path modelDirOrFile) throws IOException {
    return new HfTokenCounter(Tokenizer.load(modelDirOrFile), true);
  }

  public Tokenizer tokenizer() {
    return tokenizer;
  }

  @Override
  public int count(String text) {
    return tokenizer.encodeNoSpecial(text).length;
  }

  @Override
  public void close() {
    if (owned) {
      tokenizer.close();
    }
  }

  @Override
  public String toString() {
    return "tokenizer " + tokenizer.file();
  }
}
