package io.kvasir.policy;

import java.util.Locale;

/** The four orthogonal axes of a cache policy (DESIGN.md, "Cache policies"). */
public enum Axis {
  /** How K and V are stored in a page (bf16, quantized formats). */
  FORMAT,
  /** Which pages live where and which are attended (all on the GPU, top-K, host tier). */
  PLACEMENT,
  /** Which tokens are dropped for good. */
  EVICTION,
  /** Which pages are shared across requests (hash-chained prefixes, spans). */
  REUSE;

  @Override
  public String toString() {
    return name().toLowerCase(Locale.ROOT);
  }
}
