package io.kvasir.policy;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The components Kvasir implements, by name. A technique joins by adding its component here
 * (with its axis and parameters) and its kernels to the native step; specs naming anything else
 * are refused with the list of valid names.
 */
public final class Components {
  /** bf16 pages: the default format. */
  public static final ComponentType BF16 = ComponentType.of("bf16", Axis.FORMAT,
      "K and V in bf16 (the default format)");
  /** Every page attended, all on the GPU: full KV, the default placement. */
  public static final ComponentType FULL = ComponentType.of("full", Axis.PLACEMENT,
      "every page on the GPU and attended (full KV; the default placement)");
  /** Quest: top-K pages per step by the upper bound of q.k over each page's key summary. */
  public static final ComponentType QUEST = ComponentType.of("quest", Axis.PLACEMENT,
      "Quest: each decode step attends the top-K pages by the upper bound of q.k from the pages' per-channel"
          + " key min/max (max over the GQA group); all pages stay on the GPU",
      ParamSpec.integer("k", 1, 1 << 20, "pages attended per step (the policy's page size); default 64"),
      ParamSpec.integer("k_tokens", 1, 1 << 30, "tokens attended per step, rounded up to whole pages"))
      .withCheck(v -> v.containsKey("k") && v.containsKey("k_tokens")
          ? Optional.of("give k (pages) or k_tokens (tokens), not both") : Optional.empty());
  /** Hash-chained prefix pages shared across requests: the default reuse. */
  public static final ComponentType PREFIX = ComponentType.of("prefix", Axis.REUSE,
      "prefix caching: full pages hash-chained on (parent, tokens) and shared across requests (the default"
          + " reuse; --no-prefix-cache turns it off)");

  private static final Map<String, ComponentType> BY_NAME = new LinkedHashMap<>();

  static {
    for (ComponentType t : new ComponentType[] {BF16, FULL, QUEST, PREFIX}) {
      BY_NAME.put(t.name(), t);
    }
  }

  private Components() {}

  public static Optional<ComponentType> byName(String name) {
    return Optional.ofNullable(BY_NAME.get(name));
  }

  /** Every component, in registration order. */
  public static Iterable<ComponentType> all() {
    return BY_NAME.values();
  }

  /** The names, for error messages. */
  public static String names() {
    return String.join(", ", BY_NAME.keySet());
  }
}
