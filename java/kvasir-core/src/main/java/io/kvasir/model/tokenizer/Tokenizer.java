package io.kvasir.model.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.kvasir.model.CheckpointException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.MalformedInputException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The tokenizer of a Hugging Face model directory: its {@code tokenizer.json} run by the Hugging
 * Face tokenizers library (Rust, through DJL's JNI binding), so normalization, pre-tokenization,
 * BPE merges, added/special tokens and the post-processor behave exactly as in transformers.
 *
 * <p>{@link #encode} adds what the file's post-processor adds (for example Llama 3.1's
 * {@code <|begin_of_text|>}; Qwen3 and Llama 3 base add nothing): Kvasir never adds BOS itself.
 * Special tokens written in the text ({@code <|im_start|>}) are always recognized, as in
 * transformers. {@link #decode} is the file's decoder output, without transformers'
 * {@code clean_up_tokenization_spaces} rewriting, so byte-level tokenizers round-trip exactly.
 *
 * <p>Thread-safe: the native tokenizer is immutable once loaded. {@link #close()} frees it; any
 * later call throws {@link IllegalStateException}.
 */
public final class Tokenizer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(Tokenizer.class);

  /** The file this class reads in a model directory. */
  public static final String FILE_NAME = "tokenizer.json";

  static {
    // DJL picks a CUDA build of its native library when it sees a GPU and downloads it, which
    // fails on a machine without network ("Failed to load Huggingface native library"); offline
    // mode makes it use the CPU library inside its jar, and also skips its EC2 call-home probe.
    // Must run before any DJL class initializes; an explicit setting by the user wins.
    if (System.getProperty("ai.djl.offline") == null && System.getenv("DJL_OFFLINE") == null) {
      System.setProperty("ai.djl.offline", "true");
    }
  }

  private final Path file;
  private final HuggingFaceTokenizer hf;
  private final int vocabSize;
  private final Map<String, Integer> addedTokens;
  private final Set<Integer> specialIds;
  private final AtomicBoolean closed = new AtomicBoolean();

  private Tokenizer(Path file, HuggingFaceTokenizer tokenizer, Vocabulary vocabulary) {
    this.file = file;
    this.hf = tokenizer;
    this.vocabSize = vocabulary.size;
    this.addedTokens = Collections.unmodifiableMap(vocabulary.addedTokens);
    this.specialIds = Collections.unmodifiableSet(vocabulary.specialIds);
  }

  /**
   * Loads {@code tokenizer.json} from a model directory (or the file itself when given one).
   *
   * @throws CheckpointException when the file is missing or is not a tokenizer the library
   *     accepts; the message names the file
   * @throws IOException when reading fails for another reason
   */
  public static Tokenizer load(Path modelDirOrFile) throws IOException {
    Path file = Files.isDirectory(modelDirOrFile) ? modelDirOrFile.resolve(FILE_NAME) : modelDirOrFile;
    if (!Files.isRegularFile(file)) {
      throw new CheckpointException(file + ": not found; a Hugging Face model directory needs "
          + FILE_NAME + " to tokenize text");
    }
    long start = System.nanoTime();
    String json;
    try {
      json = Files.readString(file, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(file + ": not found", e);
    } catch (MalformedInputException e) {
      throw new CheckpointException(file + ": malformed, not UTF-8 text", e);
    }
    Vocabulary vocabulary = Vocabulary.scan(file, json);
    HuggingFaceTokenizer tokenizer;
    try (InputStream in = new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8))) {
      // No truncation and no padding: DJL defaults to truncating at 512 tokens otherwise.
      tokenizer = HuggingFaceTokenizer.newInstance(in, Map.of(
          "addSpecialTokens", "true", "truncation", "false", "padding", "false"));
    } catch (RuntimeException e) {
      // The Rust side reports a malformed file as a RuntimeException with serde's message.
      throw new CheckpointException(file + ": malformed tokenizer file: " + e.getMessage(), e);
    }
    LOG.info("tokenizer {}: {} tokens ({} added), loaded in {} ms", file, vocabulary.size,
        vocabulary.addedTokens.size(), (System.nanoTime() - start) / 1_000_000);
    return new Tokenizer(file, tokenizer, vocabulary);
  }

  /** The {@code tokenizer.json} this tokenizer was loaded from. */
  public Path file() {
    return file;
  }

  /** Token ids of {@code text}, with what the file's post-processor adds (BOS or nothing). */
  public int[] encode(String text) {
    return encode(text, true);
  }

  /** Token ids of {@code text} without post-processor additions; special tokens in the text still count. */
  public int[] encodeNoSpecial(String text) {
    return encode(text, false);
  }

  private int[] encode(String text, boolean addSpecialTokens) {
    checkOpen();
    long[] ids = hf.encode(text, addSpecialTokens, false).getIds();
    int[] out = new int[ids.length];
    for (int i = 0; i < ids.length; i++) {
      out[i] = Math.toIntExact(ids[i]);
    }
    return out;
  }

  /** The text of {@code ids}, special tokens included. */
  public String decode(int[] ids) {
    return decode(ids, false);
  }

  /** The text of {@code ids}; with {@code skipSpecialTokens}, special tokens (EOS, ChatML markers) are left out. */
  public String decode(int[] ids, boolean skipSpecialTokens) {
    checkOpen();
    long[] wide = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= vocabSize) {
        throw new IllegalArgumentException("token id " + ids[i] + " at index " + i
            + " is outside the vocabulary [0, " + vocabSize + ") of " + file);
      }
      wide[i] = ids[i];
    }
    return hf.decode(wide, skipSpecialTokens);
  }

  /**
   * The number of token ids, added tokens included (transformers' {@code len(tokenizer)}):
   * one more than the largest id. A model's embedding table may be larger (padded).
   */
  public int vocabSize() {
    return vocabSize;
  }

  /**
   * The id of a single token given as text, such as {@code "<|im_end|>"}: an added token of the
   * file, or else the text when it encodes to exactly one id that decodes back to it.
   */
  public OptionalInt tokenId(String token) {
    Integer added = addedTokens.get(token);
    if (added != null) {
      return OptionalInt.of(added);
    }
    int[] ids = encodeNoSpecial(token);
    if (ids.length == 1 && decode(ids).equals(token)) {
      return OptionalInt.of(ids[0]);
    }
    return OptionalInt.empty();
  }

  /** Whether {@code id} is an added token marked special (skipped by {@code decode(ids, true)}). */
  public boolean isSpecial(int id) {
    return specialIds.contains(id);
  }

  /** A streaming decoder for generated ids (see {@link Detokenizer}), special tokens included. */
  public Detokenizer detokenizer() {
    return new Detokenizer(this, new int[0], false);
  }

  /**
   * A streaming decoder that continues after {@code promptIds} (which it does not emit): the
   * prompt's last tokens give the first generated token its context (a leading space, say).
   */
  public Detokenizer detokenizer(int[] promptIds, boolean skipSpecialTokens) {
    return new Detokenizer(this, promptIds, skipSpecialTokens);
  }

  private void checkOpen() {
    if (closed.get()) {
      throw new IllegalStateException("tokenizer " + file + " is closed");
    }
  }

  /** Frees the native tokenizer; idempotent. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      hf.close();
    }
  }

  @Override
  public String toString() {
    return "Tokenizer[" + file + ", " + vocabSize + " tokens]";
  }

  /**
   * What the library's binding does not expose, read from the file with a streaming parser (the
   * file is megabytes; no tree is built): the largest id of {@code model.vocab} and
   * {@code added_tokens}, and the added tokens with their special flags.
   */
  private static final class Vocabulary {
    int size;
    final Map<String, Integer> addedTokens = new HashMap<>();
    final Set<Integer> specialIds = new HashSet<>();

    static Vocabulary scan(Path file, String json) {
      Vocabulary v = new Vocabulary();
      int maxId = -1;
      boolean sawModel = false;
      try (JsonParser p = new JsonFactory().createParser(json)) {
        if (p.nextToken() != JsonToken.START_OBJECT) {
          throw new CheckpointException(file + ": malformed tokenizer file: expected a JSON object");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String field = p.currentName();
          JsonToken value = p.nextToken();
          if ("added_tokens".equals(field) && value == JsonToken.START_ARRAY) {
            maxId = Math.max(maxId, v.readAddedTokens(file, p));
          } else if ("model".equals(field) && value == JsonToken.START_OBJECT) {
            sawModel = true;
            maxId = Math.max(maxId, readModelVocab(p));
          } else {
            p.skipChildren();
          }
        }
      } catch (IOException e) {
        throw new CheckpointException(file + ": malformed tokenizer file: " + e.getMessage(), e);
      }
      if (!sawModel || maxId < 0) {
        throw new CheckpointException(file + ": malformed tokenizer file: no \"model\" with a vocabulary");
      }
      v.size = maxId + 1;
      return v;
    }

    private int readAddedTokens(Path file, JsonParser p) throws IOException {
      int maxId = -1;
      while (p.nextToken() == JsonToken.START_OBJECT) {
        String content = null;
        int id = -1;
        boolean special = false;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String field = p.currentName();
          p.nextToken();
          switch (field) {
            case "id" -> id = p.getIntValue();
            case "content" -> content = p.getText();
            case "special" -> special = p.getBooleanValue();
            default -> p.skipChildren();
          }
        }
        if (content == null || id < 0) {
          throw new CheckpointException(file + ": malformed tokenizer file: an added_tokens entry"
              + " lacks \"content\" or \"id\"");
        }
        addedTokens.put(content, id);
        if (special) {
          specialIds.add(id);
        }
        maxId = Math.max(maxId, id);
      }
      return maxId;
    }

    /** The largest id in {@code model.vocab}: an object token -> id (BPE, WordPiece) or a list (Unigram). */
    private static int readModelVocab(JsonParser p) throws IOException {
      int maxId = -1;
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String field = p.currentName();
        JsonToken value = p.nextToken();
        if (!"vocab".equals(field)) {
          p.skipChildren();
        } else if (value == JsonToken.START_OBJECT) {
          while (p.nextToken() == JsonToken.FIELD_NAME) {
            p.nextToken();
            maxId = Math.max(maxId, p.getIntValue());
          }
        } else if (value == JsonToken.START_ARRAY) {
          int n = 0;
          while (p.nextToken() != JsonToken.END_ARRAY) {
            p.skipChildren();
            n++;
          }
          maxId = Math.max(maxId, n - 1);
        }
      }
      return maxId;
    }
  }
}
