package io.kvasir.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * {@code model.safetensors.index.json} of a sharded checkpoint: {@code weight_map} names, for
 * every tensor, the shard file that holds it ({@code {"metadata": {"total_size": ...},
 * "weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors", ...}}}).
 *
 * @param file      the index file
 * @param weightMap tensor name to shard file name (a plain name inside the index's directory)
 */
public record SafetensorsIndex(Path file, Map<String, String> weightMap) {
  /** The file name transformers writes for sharded checkpoints. */
  public static final String FILE_NAME = "model.safetensors.index.json";

  public SafetensorsIndex {
    weightMap = Collections.unmodifiableMap(new LinkedHashMap<>(weightMap));
  }

  /**
   * Reads and checks an index: {@code weight_map} present, every shard a plain file name (no
   * directories: the index must not reach outside its model directory), and every shard present.
   *
   * @throws CheckpointException naming the index and the missing or bad shard
   */
  public static SafetensorsIndex load(Path file) throws IOException {
    String text;
    try {
      text = Files.readString(file);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(file + ": no such file", e);
    }
    JsonNode root;
    try {
      root = ModelConfig.strictMapper().readTree(text);
    } catch (JsonProcessingException e) {
      throw new CheckpointException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
    }
    JsonNode map = root == null ? null : root.get("weight_map");
    if (map == null || !map.isObject() || map.size() == 0) {
      throw new CheckpointException(file + ": field \"weight_map\": required, a non-empty object of tensor name to"
          + " shard file name");
    }
    Map<String, String> weightMap = new LinkedHashMap<>();
    for (Map.Entry<String, JsonNode> e : map.properties()) {
      JsonNode shard = e.getValue();
      if (!shard.isTextual() || !isPlainFileName(shard.textValue())) {
        throw new CheckpointException(file + ": field \"weight_map\": tensor \"" + e.getKey() + "\" maps to "
            + ConfigFields.describe(shard) + "; expected the plain name of a .safetensors file beside the index");
      }
      weightMap.put(e.getKey(), shard.textValue());
    }
    SafetensorsIndex index = new SafetensorsIndex(file, weightMap);
    Path dir = index.directory();
    for (String shard : index.shardFiles()) {
      if (!Files.isRegularFile(dir.resolve(shard))) {
        String example = weightMap.entrySet().stream().filter(e -> e.getValue().equals(shard))
            .map(Map.Entry::getKey).findFirst().orElse("?");
        long count = weightMap.values().stream().filter(shard::equals).count();
        throw new CheckpointException(file + ": shard " + shard + " is missing from " + dir + " (it holds \""
            + example + "\"" + (count > 1 ? " and " + (count - 1) + " more tensors" : "") + ")");
      }
    }
    return index;
  }

  private static boolean isPlainFileName(String name) {
    return !name.isEmpty() && !name.contains("/") && !name.contains("\\") && !name.equals(".")
        && !name.equals("..");
  }

  /** The directory the shards live in. */
  public Path directory() {
    Path parent = file.toAbsolutePath().getParent();
    return parent == null ? Path.of(".") : parent;
  }

  /** The distinct shard file names, in order of first mention. */
  public List<String> shardFiles() {
    return new ArrayList<>(new LinkedHashSet<>(weightMap.values()));
  }
}
