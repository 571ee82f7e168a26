package io.kvasir.policy;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * A validated cache policy: one component per axis, the ones the spec leaves out filled with the
 * defaults (format {@code bf16}, placement {@code full}, reuse {@code prefix}; no eviction).
 *
 * <p>Spec syntax, the same in the API, CLI, server and bench: components joined by {@code +}, a
 * component is {@code name[:param=value,...]}, a list of policies is separated by {@code ;}
 * ({@code quest:k=64}, {@code "full;quest:k_tokens=1024"}). Unknown names, unknown or repeated
 * parameters, values out of range and two components on one axis are refused with a
 * {@link PolicySpecException} that names the spec and lists what is valid.
 */
public final class Policy {
  private static final Pattern NAME = Pattern.compile("[a-z0-9][a-z0-9_-]*");

  /** A component with its validated parameter values (Long, Double or Boolean). */
  public record Component(ComponentType type, Map<String, Object> values) {
    public Component {
      values = Collections.unmodifiableMap(new LinkedHashMap<>(values));
    }

    public String name() {
      return type.name();
    }

    /** An integer parameter, or {@code fallback} when the spec left it out. */
    public long intValue(String param, long fallback) {
      Object v = values.get(param);
      return v == null ? fallback : (Long) v;
    }

    /** A real parameter, or {@code fallback} when the spec left it out. */
    public double realValue(String param, double fallback) {
      Object v = values.get(param);
      return v == null ? fallback : (Double) v;
    }

    @Override
    public String toString() {
      return new ComponentSpec(type.name(), values.entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey,
          e -> String.valueOf(e.getValue()), (a, b) -> a, LinkedHashMap::new))).toString();
    }
  }

  private final List<Component> written;
  private final Map<Axis, Component> byAxis;

  private Policy(List<Component> written, Map<Axis, Component> byAxis) {
    this.written = List.copyOf(written);
    this.byAxis = Collections.unmodifiableMap(byAxis);
  }

  /** The default policy: full KV in bf16 with prefix caching. */
  public static Policy defaults() {
    return parse("full");
  }

  /**
   * One policy.
   *
   * @throws PolicySpecException naming the spec and the problem
   */
  public static Policy parse(String spec) {
    List<ComponentSpec> specs = syntax(spec);
    List<Component> written = new ArrayList<>();
    Map<Axis, Component> byAxis = new EnumMap<>(Axis.class);
    for (ComponentSpec c : specs) {
      ComponentType type = Components.byName(c.name()).orElseThrow(() -> error(spec,
          "unknown component \"" + c.name() + "\"; components: " + Components.names()));
      Map<String, Object> values = new LinkedHashMap<>();
      for (Map.Entry<String, String> p : c.params().entrySet()) {
        ParamSpec param = type.param(p.getKey()).orElseThrow(() -> error(spec, type.name() + " has no parameter \""
            + p.getKey() + "\"; its parameters: " + type.paramNames()));
        try {
          values.put(param.name(), param.parse(type.name(), p.getValue()));
        } catch (PolicySpecException e) {
          throw error(spec, e.getMessage());
        }
      }
      type.check().apply(values).ifPresent(problem -> {
        throw error(spec, type.name() + ": " + problem);
      });
      Component component = new Component(type, values);
      Component other = byAxis.putIfAbsent(type.axis(), component);
      if (other != null) {
        throw error(spec, other.name() + " and " + type.name() + " are both " + type.axis()
            + " components; a policy has one per axis (format, placement, eviction, reuse)");
      }
      written.add(component);
    }
    byAxis.putIfAbsent(Axis.FORMAT, new Component(Components.BF16, Map.of()));
    byAxis.putIfAbsent(Axis.PLACEMENT, new Component(Components.FULL, Map.of()));
    byAxis.putIfAbsent(Axis.REUSE, new Component(Components.PREFIX, Map.of()));
    return new Policy(written, byAxis);
  }

  /**
   * A list of policies separated by {@code ;} (each non-empty).
   *
   * @throws PolicySpecException naming the spec and the problem
   */
  public static List<Policy> parseList(String specs) {
    if (specs == null || specs.isBlank()) {
      throw new PolicySpecException("empty policy list; write policies separated by ';' (\"full;quest:k=64\")");
    }
    List<Policy> out = new ArrayList<>();
    String[] parts = specs.split(";", -1);
    for (int i = 0; i < parts.length; ++i) {
      if (parts[i].isBlank()) {
        throw new PolicySpecException("policy list \"" + specs + "\": policy " + (i + 1) + " is empty");
      }
      out.add(parse(parts[i].strip()));
    }
    return out;
  }

  /** The components as written, checked for syntax only. */
  static List<ComponentSpec> syntax(String spec) {
    if (spec == null || spec.isBlank()) {
      throw new PolicySpecException("empty policy spec; write components joined by '+' (\"quest:k=64\"); components: "
          + Components.names());
    }
    List<ComponentSpec> out = new ArrayList<>();
    String[] parts = spec.split("\\+", -1);
    for (int i = 0; i < parts.length; ++i) {
      String part = parts[i].strip();
      if (part.isEmpty()) {
        throw error(spec, "component " + (i + 1) + " is empty");
      }
      int colon = part.indexOf(':');
      String name = (colon < 0 ? part : part.substring(0, colon)).strip();
      if (!NAME.matcher(name).matches()) {
        throw error(spec, "\"" + name + "\" is not a component name (lower-case letters, digits, '-' and '_')");
      }
      Map<String, String> params = new LinkedHashMap<>();
      if (colon >= 0) {
        String list = part.substring(colon + 1);
        if (list.isBlank()) {
          throw error(spec, name + ": nothing after ':'; write " + name + ":param=value[,param=value...]");
        }
        for (String kv : list.split(",", -1)) {
          int eq = kv.indexOf('=');
          String key = (eq < 0 ? kv : kv.substring(0, eq)).strip();
          String value = eq < 0 ? "" : kv.substring(eq + 1).strip();
          if (eq < 0 || key.isEmpty() || value.isEmpty() || value.contains("=") || value.contains(":")) {
            throw error(spec, name + ": \"" + kv.strip() + "\" is not param=value");
          }
          if (params.put(key, value) != null) {
            throw error(spec, name + ": " + key + " is given twice");
          }
        }
      }
      out.add(new ComponentSpec(name, params));
    }
    return out;
  }

  private static PolicySpecException error(String spec, String problem) {
    return new PolicySpecException("policy \"" + spec + "\": " + problem);
  }

  /** The component on an axis (format, placement and reuse always have one). */
  public Optional<Component> component(Axis axis) {
    return Optional.ofNullable(byAxis.get(axis));
  }

  public Component format() {
    return byAxis.get(Axis.FORMAT);
  }

  public Component placement() {
    return byAxis.get(Axis.PLACEMENT);
  }

  public Optional<Component> eviction() {
    return component(Axis.EVICTION);
  }

  /** Whether full pages are shared across requests by hash chains (prefix caching). */
  public boolean prefixCache() {
    return component(Axis.REUSE).map(c -> c.type() == Components.PREFIX).orElse(false);
  }

  /** This policy with prefix caching off ({@code --no-prefix-cache}). */
  public Policy withoutPrefixCache() {
    Map<Axis, Component> m = new EnumMap<>(byAxis);
    if (m.get(Axis.REUSE) != null && m.get(Axis.REUSE).type() == Components.PREFIX) {
      m.remove(Axis.REUSE);
    }
    List<Component> w = written.stream().filter(c -> c.type() != Components.PREFIX).toList();
    return new Policy(w, m);
  }

  /** The components as written, in canonical form ({@code quest:k=64}); "full" when none were. */
  public String spec() {
    return written.isEmpty() ? Components.FULL.name()
        : written.stream().map(Component::toString).collect(Collectors.joining("+"));
  }

  /** Every axis's component, defaults included ({@code bf16+full+prefix}). */
  public String resolved() {
    return byAxis.values().stream().map(Component::toString).collect(Collectors.joining("+"));
  }

  @Override
  public String toString() {
    return spec();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Policy p && p.byAxis.equals(byAxis);
  }

  @Override
  public int hashCode() {
    return byAxis.hashCode();
  }
}
