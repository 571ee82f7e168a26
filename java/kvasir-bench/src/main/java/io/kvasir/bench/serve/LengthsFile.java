package io.kvasir.bench.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * (prompt, output) token-length pairs read from a file: CSV lines {@code prompt,output} (a header
 * line and {@code #} comments are skipped) or JSON lines {@code {"prompt_tokens": N,
 * "output_tokens": M}}. Request {@code i} of a workload takes pair {@code i mod size}.
 */
public record LengthsFile(Path path, List<Pair> pairs) {
  /** One request's lengths. */
  public record Pair(int promptTokens, int outputTokens) {
    public Pair {
      if (promptTokens < 1 || outputTokens < 1) {
        throw new IllegalArgumentException("lengths (" + promptTokens + ", " + outputTokens + ") must be >= 1");
      }
    }
  }

  public LengthsFile {
    pairs = List.copyOf(pairs);
    if (pairs.isEmpty()) {
      throw new IllegalArgumentException(path + ": no (prompt, output) length pairs");
    }
  }

  /**
   * Reads the file.
   *
   * @throws IllegalArgumentException naming the file and line when a line is malformed
   */
  public static LengthsFile read(Path file) throws IOException {
    List<Pair> out = new ArrayList<>();
    ObjectMapper json = new ObjectMapper();
    List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    for (int i = 0; i < lines.size(); ++i) {
      String line = lines.get(i).strip();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      String where = file + ":" + (i + 1);
      try {
        if (line.startsWith("{")) {
          JsonNode o = json.readTree(line);
          JsonNode p = o.get("prompt_tokens");
          JsonNode q = o.get("output_tokens");
          if (p == null || q == null || !p.canConvertToInt() || !q.canConvertToInt()) {
            throw new IllegalArgumentException("a JSON line needs integer prompt_tokens and output_tokens");
          }
          out.add(new Pair(p.asInt(), q.asInt()));
          continue;
        }
        String[] cells = line.split(",");
        if (cells.length != 2) {
          throw new IllegalArgumentException("a CSV line is prompt,output");
        }
        int p;
        int q;
        try {
          p = Integer.parseInt(cells[0].strip());
          q = Integer.parseInt(cells[1].strip());
        } catch (NumberFormatException e) {
          if (out.isEmpty()) {
            continue;  // a header line
          }
          throw new IllegalArgumentException("\"" + line + "\" is not two integers");
        }
        out.add(new Pair(p, q));
      } catch (IOException e) {
        throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
      }
    }
    return new LengthsFile(file, out);
  }

  public int size() {
    return pairs.size();
  }

  /** The pair of request {@code i}. */
  public Pair get(int i) {
    return pairs.get(i % pairs.size());
  }
}
