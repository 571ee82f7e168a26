package io.kvasir.model.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * One optional JSON object file of a model directory ({@code tokenizer_config.json},
 * {@code generation_config.json}) with typed field access whose errors name the file and the
 * field. JSON null counts as absent, as in transformers.
 */
final class JsonFile {
  static final ObjectMapper MAPPER = new ObjectMapper();

  private final Path path;
  private final ObjectNode root; // empty when the file does not exist

  private JsonFile(Path path, ObjectNode root) {
    this.path = path;
    this.root = root;
  }

  /** Reads {@code dir/name}; a missing file reads as an empty object, a malformed one throws. */
  static JsonFile readOptional(Path dir, String name) throws IOException {
    Path path = dir.resolve(name);
    if (!Files.exists(path)) {
      return new JsonFile(path, MAPPER.createObjectNode());
    }
    return read(path);
  }

  /** Reads a file that must exist. */
  static JsonFile read(Path path) throws IOException {
    if (!Files.isRegularFile(path)) {
      throw new CheckpointException(path + ": not found");
    }
    JsonNode node;
    try {
      node = MAPPER.readTree(path.toFile());
    } catch (JsonProcessingException e) {
      throw new CheckpointException(path + ": malformed JSON: " + e.getOriginalMessage(), e);
    }
    if (node == null || !node.isObject()) {
      throw new CheckpointException(path + ": malformed: expected a JSON object");
    }
    return new JsonFile(path, (ObjectNode) node);
  }

  Path path() {
    return path;
  }

  ObjectNode root() {
    return root;
  }

  JsonNode get(String field) {
    JsonNode v = root.get(field);
    return v == null || v.isNull() ? null : v;
  }

  CheckpointException error(String field, String problem) {
    return new CheckpointException(path + ": field \"" + field + "\": " + problem);
  }

  OptionalDouble optDouble(String field) {
    JsonNode v = get(field);
    if (v == null) {
      return OptionalDouble.empty();
    }
    if (!v.isNumber()) {
      throw error(field, "expected a number, found " + v);
    }
    return OptionalDouble.of(v.doubleValue());
  }

  OptionalInt optInt(String field) {
    JsonNode v = get(field);
    if (v == null) {
      return OptionalInt.empty();
    }
    if (!v.isIntegralNumber() || !v.canConvertToInt()) {
      throw error(field, "expected an integer, found " + v);
    }
    return OptionalInt.of(v.intValue());
  }

  Optional<Boolean> optBoolean(String field) {
    JsonNode v = get(field);
    if (v == null) {
      return Optional.empty();
    }
    if (!v.isBoolean()) {
      throw error(field, "expected true or false, found " + v);
    }
    return Optional.of(v.booleanValue());
  }
}
