package io.kvasir.bench.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Field access on one record's JSON that names the file and the field's dotted path when a
 * required field is missing or of the wrong type. Optional getters return null for a missing or
 * JSON-null field and still refuse a wrong type.
 */
final class Json {
  private final Path file;

  Json(Path file) {
    this.file = file;
  }

  Path file() {
    return file;
  }

  RecordException error(String path, String problem) {
    return new RecordException(file, "field '" + path + "': " + problem);
  }

  JsonNode object(JsonNode parent, String parentPath, String name) {
    JsonNode n = parent.get(name);
    String path = join(parentPath, name);
    if (n == null || n.isNull()) {
      throw error(path, "missing");
    }
    if (!n.isObject()) {
      throw error(path, "expected an object, found " + n.getNodeType().name().toLowerCase(java.util.Locale.ROOT));
    }
    return n;
  }

  JsonNode optObject(JsonNode parent, String parentPath, String name) {
    JsonNode n = parent.get(name);
    if (n == null || n.isNull()) {
      return null;
    }
    if (!n.isObject()) {
      throw error(join(parentPath, name), "expected an object");
    }
    return n;
  }

  double number(JsonNode parent, String parentPath, String name) {
    Double d = optNumber(parent, parentPath, name);
    if (d == null) {
      throw error(join(parentPath, name), "missing");
    }
    return d;
  }

  Double optNumber(JsonNode parent, String parentPath, String name) {
    JsonNode n = parent.get(name);
    if (n == null || n.isNull()) {
      return null;
    }
    if (!n.isNumber()) {
      throw error(join(parentPath, name), "expected a number, found " + n);
    }
    return n.doubleValue();
  }

  String text(JsonNode parent, String parentPath, String name) {
    String s = optText(parent, parentPath, name);
    if (s == null) {
      throw error(join(parentPath, name), "missing");
    }
    return s;
  }

  /** A string field; numbers and booleans are accepted as their text (a date, a seed). */
  String optText(JsonNode parent, String parentPath, String name) {
    JsonNode n = parent.get(name);
    if (n == null || n.isNull()) {
      return null;
    }
    if (!n.isValueNode()) {
      throw error(join(parentPath, name), "expected a string");
    }
    return n.asText();
  }

  Boolean optBoolean(JsonNode parent, String parentPath, String name) {
    JsonNode n = parent.get(name);
    if (n == null || n.isNull()) {
      return null;
    }
    if (!n.isBoolean()) {
      throw error(join(parentPath, name), "expected true or false");
    }
    return n.booleanValue();
  }

  JsonNode array(JsonNode parent, String parentPath, String name) {
    JsonNode n = parent.get(name);
    String path = join(parentPath, name);
    if (n == null || n.isNull()) {
      throw error(path, "missing");
    }
    if (!n.isArray()) {
      throw error(path, "expected an array");
    }
    return n;
  }

  /** A numeric array, or null when the field is absent; a non-number element is refused. */
  List<Double> optNumbers(JsonNode parent, String parentPath, String name) {
    return numbers(parent, parentPath, name, false);
  }

  /** Like {@link #optNumbers}, leaving out JSON nulls (a figure a sample does not have). */
  List<Double> optNumbersSkippingNulls(JsonNode parent, String parentPath, String name) {
    return numbers(parent, parentPath, name, true);
  }

  private List<Double> numbers(JsonNode parent, String parentPath, String name, boolean skipNulls) {
    JsonNode n = parent.get(name);
    if (n == null || n.isNull()) {
      return null;
    }
    String path = join(parentPath, name);
    if (!n.isArray()) {
      throw error(path, "expected an array of numbers");
    }
    List<Double> out = new ArrayList<>(n.size());
    for (int i = 0; i < n.size(); ++i) {
      JsonNode e = n.get(i);
      if (skipNulls && e.isNull()) {
        continue;
      }
      if (!e.isNumber()) {
        throw error(path + "[" + i + "]", "expected a number" + (skipNulls ? " or null" : "") + ", found " + e);
      }
      out.add(e.doubleValue());
    }
    return out;
  }

  static String join(String parentPath, String name) {
    return parentPath == null || parentPath.isEmpty() ? name : parentPath + "." + name;
  }
}
