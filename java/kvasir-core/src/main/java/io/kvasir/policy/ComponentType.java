package io.kvasir.policy;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/**
 * A kind of policy component: its name, the axis it fills, its parameters and a check across
 * parameters (for example "k or k_tokens, not both"), which returns an error text or nothing.
 */
public record ComponentType(String name, Axis axis, String description, List<ParamSpec> params,
    Function<Map<String, Object>, Optional<String>> check) {
  public ComponentType {
    params = List.copyOf(params);
  }

  static ComponentType of(String name, Axis axis, String description, ParamSpec... params) {
    return new ComponentType(name, axis, description, List.of(params), values -> Optional.empty());
  }

  ComponentType withCheck(Function<Map<String, Object>, Optional<String>> check) {
    return new ComponentType(name, axis, description, params, check);
  }

  Optional<ParamSpec> param(String name) {
    return params.stream().filter(p -> p.name().equals(name)).findFirst();
  }

  /** The parameter names, for error messages ("none" when it takes none). */
  String paramNames() {
    return params.isEmpty() ? "none" : String.join(", ", params.stream().map(ParamSpec::name).toList());
  }
}
