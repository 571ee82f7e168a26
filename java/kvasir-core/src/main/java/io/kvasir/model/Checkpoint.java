package io.kvasir.model;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A Hugging Face model directory, opened: {@code config.json} plus the weights, either one
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}, every file
 * memory-mapped (see {@link SafetensorsFile}). Opening checks that every tensor the architecture
 * needs ({@link Weight#expected}) is present with the shape the config implies, so a caller that
 * got a {@code Checkpoint} can look tensors up without further checks.
 *
 * <p>Tensors other than the expected ones are allowed (older Llama checkpoints carry
 * {@code rotary_emb.inv_freq}, tied checkpoints may still carry {@code lm_head.weight}); they
 * are logged and never used. Tensors may have different dtypes.
 *
 * <p>{@link #close()} drops the references to the mappings; the memory is unmapped when the
 * garbage collector frees the last {@link TensorView} (Java 17 cannot unmap explicitly), so
 * views taken before closing stay valid as long as they are held.
 */
public final class Checkpoint implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(Checkpoint.class);

  /** The weight file of an unsharded checkpoint. */
  public static final String SINGLE_FILE = "model.safetensors";

  private final Path directory;
  private final ModelConfig config;
  private final List<SafetensorsFile> files;
  private volatile Map<String, TensorView> tensors; // null once closed

  private Checkpoint(Path directory, ModelConfig config, List<SafetensorsFile> files,
      Map<String, TensorView> tensors) {
    this.directory = directory;
    this.config = config;
    this.files = files;
    this.tensors = tensors;
  }

  /**
   * Opens a model directory and checks its tensors against its config.
   *
   * @throws CheckpointException for a missing or malformed file, an unsupported config, or a
   *     missing tensor or one of the wrong shape (naming it, with the expected and found shapes)
   * @throws IOException when reading or mapping fails
   */
  public static Checkpoint open(Path directory) throws IOException {
    if (!Files.isDirectory(directory)) {
      throw new CheckpointException(directory + ": not a directory; expected a Hugging Face model directory"
          + " (config.json and *.safetensors)");
    }
    ModelConfig config = ModelConfig.load(directory);
    List<SafetensorsFile> files = new ArrayList<>();
    Map<String, TensorView> tensors = new LinkedHashMap<>();
    Path indexFile = directory.resolve(SafetensorsIndex.FILE_NAME);
    if (Files.exists(indexFile)) {
      SafetensorsIndex index = SafetensorsIndex.load(indexFile);
      Map<String, SafetensorsFile> byName = new LinkedHashMap<>();
      for (String shard : index.shardFiles()) {
        SafetensorsFile f = SafetensorsFile.open(directory.resolve(shard));
        byName.put(shard, f);
        files.add(f);
      }
      for (Map.Entry<String, String> e : index.weightMap().entrySet()) {
        SafetensorsFile f = byName.get(e.getValue());
        if (!f.contains(e.getKey())) {
          throw new CheckpointException(indexFile + ": weight_map puts tensor \"" + e.getKey() + "\" in "
              + e.getValue() + ", which has no such tensor");
        }
        tensors.put(e.getKey(), f.tensor(e.getKey()));
      }
    } else {
      Path single = directory.resolve(SINGLE_FILE);
      if (!Files.exists(single)) {
        throw new CheckpointException(directory + ": no " + SINGLE_FILE + " and no " + SafetensorsIndex.FILE_NAME
            + describeOtherWeights(directory));
      }
      SafetensorsFile f = SafetensorsFile.open(single);
      files.add(f);
      for (TensorView t : f.tensors()) {
        tensors.put(t.name(), t);
      }
    }
    checkTensors(directory, config, tensors);
    LOG.info("opened {}: {} ({} layers, hidden {}, {} q / {} kv heads of {}), {} tensors in {} file(s)", directory,
        config.modelType(), config.numHiddenLayers(), config.hiddenSize(), config.numAttentionHeads(),
        config.numKeyValueHeads(), config.headDim(), tensors.size(), files.size());
    return new Checkpoint(directory, config, Collections.unmodifiableList(files),
        Collections.unmodifiableMap(tensors));
  }

  /** Says what weight files are there instead, so a user knows what to convert. */
  private static String describeOtherWeights(Path directory) throws IOException {
    try (Stream<Path> list = Files.list(directory)) {
      List<String> others = list.map(p -> p.getFileName().toString())
          .filter(n -> n.endsWith(".safetensors") || n.endsWith(".bin") || n.endsWith(".pt")
              || n.endsWith(".pth") || n.endsWith(".gguf"))
          .sorted().collect(Collectors.toList());
      if (others.isEmpty()) {
        return ": no weights found";
      }
      return ": found " + String.join(", ", others) + ", which Kvasir does not read (it needs Hugging Face"
          + " safetensors named " + SINGLE_FILE + ", or shards listed in " + SafetensorsIndex.FILE_NAME + ")";
    }
  }

  private static void checkTensors(Path directory, ModelConfig config, Map<String, TensorView> tensors) {
    List<TensorSpec> expected = Weight.expected(config);
    for (TensorSpec spec : expected) {
      TensorView t = tensors.get(spec.name());
      if (t == null) {
        throw new CheckpointException(directory + ": tensor \"" + spec.name() + "\" is missing (expected shape "
            + Arrays.toString(spec.shape()) + " for " + config.modelType() + " from config.json)");
      }
      if (!Arrays.equals(t.shape(), spec.shape())) {
        throw new CheckpointException(t.file() + ": tensor \"" + spec.name() + "\" has shape "
            + Arrays.toString(t.shape()) + " but config.json implies " + Arrays.toString(spec.shape())
            + shapeHint(config));
      }
    }
    if (tensors.size() > expected.size()) {
      List<String> names = expected.stream().map(TensorSpec::name).collect(Collectors.toList());
      List<String> extra = tensors.keySet().stream().filter(n -> !names.contains(n)).collect(Collectors.toList());
      LOG.info("{}: ignoring {} tensor(s) the {} architecture does not use, e.g. {}", directory, extra.size(),
          config.modelType(), extra.subList(0, Math.min(3, extra.size())));
    }
  }

  private static String shapeHint(ModelConfig c) {
    return " (vocab_size " + c.vocabSize() + ", hidden_size " + c.hiddenSize() + ", intermediate_size "
        + c.intermediateSize() + ", num_attention_heads " + c.numAttentionHeads() + ", num_key_value_heads "
        + c.numKeyValueHeads() + ", head_dim " + c.headDim() + ")";
  }

  /** The model directory. */
  public Path directory() {
    return directory;
  }

  public ModelConfig config() {
    return config;
  }

  /** The safetensors files, in the order they were opened. */
  public List<Path> files() {
    return files.stream().map(SafetensorsFile::path).collect(Collectors.toList());
  }

  /** Every tensor name, expected or not. */
  public List<String> names() {
    return new ArrayList<>(open().keySet());
  }

  public boolean contains(String name) {
    return open().containsKey(name);
  }

  /**
   * The tensor called {@code name}.
   *
   * @throws CheckpointException when the checkpoint has no such tensor
   */
  public TensorView tensor(String name) {
    TensorView t = open().get(name);
    if (t == null) {
      throw new CheckpointException(directory + ": no tensor named \"" + name + "\"");
    }
    return t;
  }

  /** A model-level weight ({@link Weight#EMBED}, ...); the LM head is the embedding when tied. */
  public TensorView tensor(Weight weight) {
    if (weight == Weight.LM_HEAD && config.tieWordEmbeddings()) {
      return tensor(Weight.EMBED.tensorName());
    }
    return tensor(weight.tensorName());
  }

  /** A per-layer weight. */
  public TensorView tensor(Weight weight, int layer) {
    if (layer >= config.numHiddenLayers()) {
      throw new IllegalArgumentException("layer " + layer + " of a model with " + config.numHiddenLayers());
    }
    return tensor(weight.tensorName(layer));
  }

  /** Bytes of the tensors the architecture uses (what a device copy of the weights needs). */
  public long weightBytes() {
    Map<String, TensorView> t = open();
    return Weight.expected(config).stream().mapToLong(s -> t.get(s.name()).byteSize()).sum();
  }

  /** Drops the references to the mappings; later lookups throw {@link IllegalStateException}. */
  @Override
  public void close() {
    tensors = null;
    for (SafetensorsFile f : files) {
      f.close();
    }
  }

  private Map<String, TensorView> open() {
    Map<String, TensorView> t = tensors;
    if (t == null) {
      throw new IllegalStateException(directory + ": checkpoint is closed");
    }
    return t;
  }
}
