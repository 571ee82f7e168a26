package io.kvasir.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.model.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * EOS ids of a model directory without a tokenizer: {@code eos_token_id} of
 * {@code generation_config.json}, else of {@code config.json} (an int or a list).
 */
final class GenerationConfigEos {
  private GenerationConfigEos() {}

  static int[] read(Path dir) throws IOException {
    for (String name : List.of("generation_config.json", "config.json")) {
      Path file = dir.resolve(name);
      if (!Files.isRegularFile(file)) {
        continue;
      }
      JsonNode root;
      try {
        root = new ObjectMapper().readTree(file.toFile());
      } catch (IOException e) {
        throw new CheckpointException(file + ": malformed JSON: " + e.getMessage(), e);
      }
      JsonNode eos = root.get("eos_token_id");
      if (eos == null || eos.isNull()) {
        continue;
      }
      List<Integer> ids = new ArrayList<>();
      if (eos.isInt()) {
        ids.add(eos.intValue());
      } else if (eos.isArray()) {
        for (JsonNode n : eos) {
          if (!n.isInt()) {
            throw new CheckpointException(file + ": field \"eos_token_id\": " + n + " is not a token id");
          }
          ids.add(n.intValue());
        }
      } else {
        throw new CheckpointException(file + ": field \"eos_token_id\": " + eos + " is neither an id nor a list of ids");
      }
      return ids.stream().mapToInt(Integer::intValue).toArray();
    }
    return new int[0];
  }
}
