package io.kvasir.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Typed, checked access to the fields of one JSON object of a model directory's file, so that
 * every refusal names the file and the field ({@code config.json: field "rope_scaling.factor":
 * ...}). JSON null counts as absent, as it does for transformers' config classes.
 */
final class ConfigFields {
  private final String file;
  private final String prefix; // "" or "rope_scaling." for nested objects
  private final ObjectNode node;

  ConfigFields(String file, String prefix, ObjectNode node) {
    this.file = file;
    this.prefix = prefix;
    this.node = node;
  }

  String file() {
    return file;
  }

  /** The error for {@code field}: {@code "<file>: field \"<field>\": <problem>"}. */
  CheckpointException error(String field, String problem) {
    return new CheckpointException(file + ": field \"" + prefix + field + "\": " + problem);
  }

  boolean has(String field) {
    JsonNode v = node.get(field);
    return v != null && !v.isNull();
  }

  JsonNode raw(String field) {
    JsonNode v = node.get(field);
    return v == null || v.isNull() ? null : v;
  }

  /** A nested object, or null when absent; refuses any other JSON type. */
  ConfigFields object(String field) {
    JsonNode v = raw(field);
    if (v == null) {
      return null;
    }
    if (!v.isObject()) {
      throw error(field, "expected a JSON object, found " + describe(v));
    }
    return new ConfigFields(file, prefix + field + ".", (ObjectNode) v);
  }

  int requireInt(String field) {
    if (!has(field)) {
      throw error(field, "required field is missing");
    }
    return intValue(field);
  }

  int optInt(String field, int absent) {
    return has(field) ? intValue(field) : absent;
  }

  private int intValue(String field) {
    JsonNode v = node.get(field);
    // 4096.0 is accepted (some exporters write floats); 4096.5 and "4096" are not.
    if (!v.isNumber() || !v.canConvertToExactIntegral() || !v.canConvertToInt()) {
      throw error(field, "expected an integer, found " + describe(v));
    }
    return v.intValue();
  }

  double requireDouble(String field) {
    if (!has(field)) {
      throw error(field, "required field is missing");
    }
    return doubleValue(field);
  }

  double optDouble(String field, double absent) {
    return has(field) ? doubleValue(field) : absent;
  }

  private double doubleValue(String field) {
    JsonNode v = node.get(field);
    if (!v.isNumber()) {
      throw error(field, "expected a number, found " + describe(v));
    }
    return v.doubleValue();
  }

  boolean optBoolean(String field, boolean absent) {
    if (!has(field)) {
      return absent;
    }
    JsonNode v = node.get(field);
    if (!v.isBoolean()) {
      throw error(field, "expected true or false, found " + describe(v));
    }
    return v.booleanValue();
  }

  String requireString(String field) {
    if (!has(field)) {
      throw error(field, "required field is missing");
    }
    return stringValue(field);
  }

  String optString(String field, String absent) {
    return has(field) ? stringValue(field) : absent;
  }

  private String stringValue(String field) {
    JsonNode v = node.get(field);
    if (!v.isTextual()) {
      throw error(field, "expected a string, found " + describe(v));
    }
    return v.textValue();
  }

  /** A JSON value for a message: its text, cut short, with its JSON type when not obvious. */
  static String describe(JsonNode v) {
    String text = v.toString();
    if (text.length() > 80) {
      text = text.substring(0, 77) + "...";
    }
    return v.isTextual() ? "the string " + text : text;
  }
}
