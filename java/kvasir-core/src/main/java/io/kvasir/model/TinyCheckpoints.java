package io.kvasir.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Writes complete Hugging Face model directories with random weights: {@code config.json},
 * {@code generation_config.json} and {@code model.safetensors} (or shards plus
 * {@code model.safetensors.index.json}), in the layout and naming transformers'
 * {@code save_pretrained} uses, so transformers can load them too. There is no tokenizer: prompts
 * for these models are token ids. Both JSON files carry {@code "kvasir_note": "random weights,
 * not a trained model"} (transformers keeps unknown keys as plain attributes).
 *
 * <p>Weights, a function of the seed and the tensor name only (so sharding and dtype do not
 * change them, beyond rounding):
 * <ul>
 *   <li>every matrix, embeddings and LM head included: normal with standard deviation
 *       1/sqrt(in_features), i.e. 0.072 for hidden 192, 0.036 for q_dim 768. A projection of a
 *       unit-RMS vector then has unit RMS, so attention scores q.k/sqrt(head_dim) have standard
 *       deviation about 1 (attention is far from uniform) and, after the final RMSNorm, logits
 *       have standard deviation about 1 (far from uniform, yet no single token dominates);</li>
 *   <li>RMSNorm weights (including Qwen3's q/k norms): 1 + normal(0, 0.1), so a forward that
 *       forgets to multiply by them is caught;</li>
 *   <li>Qwen2's q/k/v biases: normal(0, 0.2), visible against unit-RMS projections.</li>
 * </ul>
 */
public final class TinyCheckpoints {
  private static final Logger LOG = LogManager.getLogger(TinyCheckpoints.class);

  /** The label both JSON files carry. */
  public static final String NOTE_FIELD = "kvasir_note";
  public static final String NOTE = "random weights, not a trained model";

  static final double NORM_NOISE_STD = 0.1;
  static final double BIAS_STD = 0.2;

  private TinyCheckpoints() {}

  /**
   * Writes the model into {@code dir}, which must not exist or be empty. Files are written into
   * a temporary sibling directory first and renamed into place, so a reader never sees a
   * half-written model.
   *
   * @return {@code dir}
   * @throws FileAlreadyExistsException when {@code dir} exists and is not empty
   */
  public static Path write(TinyModelSpec spec, Path dir) throws IOException {
    Path target = dir.toAbsolutePath();
    if (Files.exists(target) && !isEmptyDirectory(target)) {
      throw new FileAlreadyExistsException(target.toString(), null, "not an empty directory; tiny checkpoints"
          + " are written only into a new or empty directory");
    }
    Files.createDirectories(target.getParent());
    // Not Files.createTempDirectory: its 0700 mode would survive the rename and hide the model
    // from other users; createDirectory applies the umask like any other directory.
    Path tmp = Files.createDirectory(target.getParent().resolve("." + target.getFileName() + ".tmp-"
        + ProcessHandle.current().pid() + "-" + Long.toHexString(System.nanoTime())));
    try {
      writeInto(spec, tmp);
      // rename(2) replaces an empty directory and fails on a non-empty one, so two writers racing
      // for the same directory leave exactly one complete model.
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException | RuntimeException e) {
      deleteRecursively(tmp);
      throw e;
    }
    LOG.info("wrote a tiny {} checkpoint with random weights (seed {}, {}, {} layers, hidden {}, {} q / {} kv"
        + " heads of {}, vocab {}, {} shard(s)) to {}", spec.architecture().modelType(), spec.seed(), spec.dtype(),
        spec.numLayers(), spec.hiddenSize(), spec.numHeads(), spec.numKvHeads(), spec.headDim(), spec.vocabSize(),
        spec.shards(), target);
    return target;
  }

  /**
   * Writes the model unless {@code dir} already holds a {@code config.json} (from an earlier
   * call, or a concurrent one that won the race): the "write on first use" of the README's
   * command. Does not check that an existing model matches {@code spec}.
   *
   * @return true when this call wrote it
   */
  public static boolean writeIfAbsent(TinyModelSpec spec, Path dir) throws IOException {
    if (Files.exists(dir.resolve(ModelConfig.FILE_NAME))) {
      return false;
    }
    try {
      write(spec, dir);
      return true;
    } catch (FileSystemException e) {
      if (Files.exists(dir.resolve(ModelConfig.FILE_NAME))) {
        return false; // another process finished first
      }
      throw e;
    }
  }

  /**
   * The values of tensor {@code name} before rounding to the file's dtype, in row-major order:
   * what a reader gets back exactly for F32 and rounded to nearest for BF16 and F16. For tests
   * and tools; holds the whole tensor in memory.
   */
  public static float[] values(TinyModelSpec spec, String name) {
    TensorSpec tensor = Weight.expected(spec.toConfig()).stream().filter(t -> t.name().equals(name)).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("a " + spec.architecture().modelType()
            + " checkpoint of this spec has no tensor \"" + name + "\""));
    long count = tensor.elementCount();
    if (count > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException(name + " has " + count + " elements: too many for an array");
    }
    float[] out = new float[(int) count];
    SafetensorsWriter.FloatSource source = source(spec.seed(), tensor);
    for (int i = 0; i < out.length; i++) {
      out[i] = source.next();
    }
    return out;
  }

  private static void writeInto(TinyModelSpec spec, Path dir) throws IOException {
    ModelConfig config = spec.toConfig();
    ObjectMapper json = ModelConfig.strictMapper().copy().enable(SerializationFeature.INDENT_OUTPUT);
    json.writeValue(dir.resolve(ModelConfig.FILE_NAME).toFile(), configJson(spec));
    Map<String, Object> generation = new LinkedHashMap<>();
    generation.put("bos_token_id", spec.bosTokenId());
    generation.put("eos_token_id", spec.eosTokenId());
    generation.put(NOTE_FIELD, NOTE);
    json.writeValue(dir.resolve("generation_config.json").toFile(), generation);

    List<TensorSpec> tensors = Weight.expected(config);
    Map<String, String> metadata = Map.of("format", "pt");
    if (spec.shards() == 1) {
      SafetensorsWriter.write(dir.resolve(Checkpoint.SINGLE_FILE), toWrite(spec, tensors), metadata);
      return;
    }
    List<List<TensorSpec>> groups = split(spec, tensors);
    Map<String, String> weightMap = new LinkedHashMap<>();
    long totalBytes = 0;
    for (int k = 0; k < groups.size(); k++) {
      String file = String.format("model-%05d-of-%05d.safetensors", k + 1, groups.size());
      SafetensorsWriter.write(dir.resolve(file), toWrite(spec, groups.get(k)), metadata);
      for (TensorSpec t : groups.get(k)) {
        weightMap.put(t.name(), file);
        totalBytes += t.elementCount() * spec.dtype().byteSize();
      }
    }
    Map<String, Object> index = new LinkedHashMap<>();
    index.put("metadata", Map.of("total_size", totalBytes));
    index.put("weight_map", weightMap);
    json.writeValue(dir.resolve(SafetensorsIndex.FILE_NAME).toFile(), index);
  }

  private static Map<String, Object> configJson(TinyModelSpec spec) {
    Architecture arch = spec.architecture();
    Map<String, Object> c = new LinkedHashMap<>();
    c.put("architectures", List.of(arch.hfClassName()));
    c.put("model_type", arch.modelType());
    c.put(NOTE_FIELD, NOTE);
    c.put("kvasir_seed", spec.seed());
    c.put("vocab_size", spec.vocabSize());
    c.put("hidden_size", spec.hiddenSize());
    c.put("intermediate_size", spec.intermediateSize());
    c.put("num_hidden_layers", spec.numLayers());
    c.put("num_attention_heads", spec.numHeads());
    c.put("num_key_value_heads", spec.numKvHeads());
    c.put("head_dim", spec.headDim());
    c.put("hidden_act", ModelConfig.HIDDEN_ACT);
    c.put("max_position_embeddings", spec.maxPositionEmbeddings());
    c.put("rms_norm_eps", spec.rmsNormEps());
    c.put("rope_theta", spec.ropeTheta());
    RopeScaling s = spec.ropeScaling();
    if (s == null) {
      c.put("rope_scaling", null);
    } else {
      Map<String, Object> scaling = new LinkedHashMap<>();
      scaling.put("rope_type", RopeScaling.LLAMA3);
      scaling.put("factor", s.factor());
      scaling.put("low_freq_factor", s.lowFreqFactor());
      scaling.put("high_freq_factor", s.highFreqFactor());
      scaling.put("original_max_position_embeddings", s.originalMaxPositionEmbeddings());
      c.put("rope_scaling", scaling);
    }
    c.put("tie_word_embeddings", spec.tieWordEmbeddings());
    c.put("torch_dtype", spec.dtype().torchName());
    if (arch == Architecture.LLAMA || arch == Architecture.QWEN3) {
      c.put("attention_bias", false);
    }
    if (arch == Architecture.LLAMA) {
      c.put("mlp_bias", false);
    }
    // transformers' Mistral/Qwen defaults turn sliding windows on or carry a window size; say
    // explicitly that there is none.
    if (arch == Architecture.QWEN2 || arch == Architecture.QWEN3) {
      c.put("use_sliding_window", false);
    }
    c.put("sliding_window", null);
    c.put("bos_token_id", spec.bosTokenId());
    c.put("eos_token_id", spec.eosTokenId());
    c.put("initializer_range", 1.0 / Math.sqrt(spec.hiddenSize()));
    return c;
  }

  private static List<SafetensorsWriter.Tensor> toWrite(TinyModelSpec spec, List<TensorSpec> tensors) {
    List<SafetensorsWriter.Tensor> out = new ArrayList<>();
    for (TensorSpec t : tensors) {
      out.add(new SafetensorsWriter.Tensor(t.name(), spec.dtype(), t.shape(), source(spec.seed(), t)));
    }
    return out;
  }

  /**
   * Splits the tensors, in order, into {@code spec.shards()} non-empty runs of roughly equal
   * bytes.
   */
  private static List<List<TensorSpec>> split(TinyModelSpec spec, List<TensorSpec> tensors) {
    int shards = spec.shards();
    int n = tensors.size();
    if (shards > n) {
      throw new IllegalArgumentException(shards + " shards for " + n + " tensors: every shard needs one");
    }
    long total = tensors.stream().mapToLong(TensorSpec::elementCount).sum();
    List<List<TensorSpec>> groups = new ArrayList<>();
    int start = 0;
    long done = 0; // elements in tensors [0, start)
    for (int k = 0; k < shards; k++) {
      int end;
      if (k == shards - 1) {
        end = n;
      } else {
        long target = total * (k + 1) / shards;
        end = start;
        int lastAllowed = n - (shards - 1 - k); // leave one tensor for each later shard
        do {
          done += tensors.get(end).elementCount();
          end++;
        } while (end < lastAllowed && done < target);
      }
      groups.add(new ArrayList<>(tensors.subList(start, end)));
      start = end;
    }
    return groups;
  }

  /** The random values of one tensor (see the class comment for the distributions). */
  private static SafetensorsWriter.FloatSource source(long seed, TensorSpec tensor) {
    // The name's hash makes each tensor's stream independent of which others exist and of order.
    SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + tensor.name().hashCode());
    long[] shape = tensor.shape();
    if (shape.length == 2) {
      double std = 1.0 / Math.sqrt(shape[1]);
      return () -> (float) (std * gaussian(rng));
    }
    if (tensor.name().endsWith(".bias")) {
      return () -> (float) (BIAS_STD * gaussian(rng));
    }
    return () -> (float) (1.0 + NORM_NOISE_STD * gaussian(rng));
  }

  /**
   * A standard normal value (Box-Muller, cosine branch), spelled out rather than taken from
   * {@code Random.nextGaussian}, so the weights of a seed never depend on the JDK.
   */
  private static double gaussian(SplittableRandom rng) {
    double u1 = 1.0 - rng.nextDouble(); // (0, 1]: log stays finite
    double u2 = rng.nextDouble();
    return Math.sqrt(-2.0 * Math.log(u1)) * Math.cos(2.0 * Math.PI * u2);
  }

  private static boolean isEmptyDirectory(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return false;
    }
    try (Stream<Path> entries = Files.list(dir)) {
      return entries.findAny().isEmpty();
    }
  }

  private static void deleteRecursively(Path dir) {
    try (Stream<Path> walk = Files.walk(dir)) {
      walk.sorted(Comparator.reverseOrder()).forEach(p -> {
        try {
          Files.deleteIfExists(p);
        } catch (IOException e) {
          LOG.warn("could not delete {}: {}", p, e.toString());
        }
      });
    } catch (IOException e) {
      LOG.warn("could not clean up {}: {}", dir, e.toString());
    }
  }
}
