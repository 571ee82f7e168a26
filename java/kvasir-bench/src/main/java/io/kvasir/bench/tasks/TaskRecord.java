package io.kvasir.bench.tasks;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * One generated sample, written as one JSON line with the fields in this order (null fields
 * left out).
 *
 * @param id           {@code <task>-<seed>}
 * @param length       the budget of {@code prompt} tokens the record was generated for
 * @param promptTokens tokens of {@code prompt} by the counter in use ({@code <= length})
 * @param depth        single-needle haystack tasks: the needle's position as a fraction of the
 *                     haystack's sentences; otherwise null
 * @param prompt       the user message only (the consumer applies the chat template)
 * @param answer       the exact assistant reply (the training target)
 * @param values       what the scorer looks for in a model's output
 * @param parts        docqa: {@code prompt} in consecutive pieces (block 0 shared, block i >= 1
 *                     independent document i); otherwise null
 */
public record TaskRecord(String id, String task, long seed, int length, int promptTokens, Double depth, String prompt,
    String answer, List<String> values, List<Part> parts) {

  private static final JsonFactory JSON = new JsonFactory();
  private static final ObjectMapper MAPPER = new ObjectMapper();

  /** A piece of a docqa prompt and the attention block it belongs to. */
  public record Part(String text, int block) {
    public Part {
      Objects.requireNonNull(text, "text");
    }
  }

  public TaskRecord {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(task, "task");
    Objects.requireNonNull(prompt, "prompt");
    Objects.requireNonNull(answer, "answer");
    values = List.copyOf(values);
    parts = parts == null ? null : List.copyOf(parts);
  }

  /** The record as one line of JSON (no newline). */
  public String toJson() {
    StringWriter out = new StringWriter(prompt.length() + answer.length() + 256);
    try (JsonGenerator g = JSON.createGenerator(out)) {
      write(g);
    } catch (IOException e) {
      throw new UncheckedIOException(e);  // a StringWriter does not fail
    }
    return out.toString();
  }

  private void write(JsonGenerator g) throws IOException {
    g.writeStartObject();
    g.writeStringField("id", id);
    g.writeStringField("task", task);
    g.writeNumberField("seed", seed);
    g.writeNumberField("length", length);
    g.writeNumberField("prompt_tokens", promptTokens);
    if (depth != null) {
      g.writeNumberField("depth", depth);
    }
    g.writeStringField("prompt", prompt);
    g.writeStringField("answer", answer);
    g.writeArrayFieldStart("values");
    for (String v : values) {
      g.writeString(v);
    }
    g.writeEndArray();
    if (parts != null) {
      g.writeArrayFieldStart("parts");
      for (Part p : parts) {
        g.writeStartObject();
        g.writeStringField("text", p.text());
        g.writeNumberField("block", p.block());
        g.writeEndObject();
      }
      g.writeEndArray();
    }
    g.writeEndObject();
  }

  /**
   * Reads a record back from its JSON line.
   *
   * @throws IllegalArgumentException when the line is not a record
   */
  public static TaskRecord fromJson(String line) {
    try {
      JsonNode n = MAPPER.readTree(line);
      List<String> values = new ArrayList<>();
      n.path("values").forEach(v -> values.add(v.asText()));
      List<Part> parts = null;
      if (n.has("parts")) {
        parts = new ArrayList<>();
        for (JsonNode p : n.get("parts")) {
          parts.add(new Part(p.get("text").asText(), p.get("block").asInt()));
        }
      }
      return new TaskRecord(n.get("id").asText(), n.get("task").asText(), n.get("seed").asLong(),
          n.get("length").asInt(), n.get("prompt_tokens").asInt(), n.has("depth") ? n.get("depth").asDouble() : null,
          n.get("prompt").asText(), n.get("answer").asText(), values, parts);
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException("not a task record: " + e.getMessage(), e);
    }
  }
}
