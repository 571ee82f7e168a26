package io.kvasir.policy;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Collectors;

/**
 * One component as written in a spec, {@code name[:param=value,...]}, before validation.
 *
 * @param name   the component's name ({@code quest})
 * @param params its parameters in the order written ({@code k=64})
 */
public record ComponentSpec(String name, Map<String, String> params) {
  public ComponentSpec {
    Objects.requireNonNull(name, "name");
    params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
  }

  /** The canonical text: the name, then {@code :p=v,...} when there are parameters. */
  @Override
  public String toString() {
    if (params.isEmpty()) {
      return name;
    }
    return name + ":" + params.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue())
        .collect(Collectors.joining(","));
  }
}
