package io.kvasir.policy.spi;

import java.util.EnumSet;
import java.util.Set;

/**
 * What a component needs from the cache manager and the native step.
 *
 * @param granularity        page tables it works on
 * @param tiers              tiers its pages may occupy (every component of a policy must accept
 *                           the tiers the others use)
 * @param formats            page formats it can read
 * @param keySummaries       whether pages need per-channel key min/max (Quest-style scoring)
 * @param prefixCacheAllowed whether full pages may be shared across requests by content (false
 *                           when the component changes a page's content after it is full, e.g.
 *                           eviction inside pages)
 */
public record Requirements(Granularity granularity, Set<Tier> tiers, Set<PageFormat> formats, boolean keySummaries,
    boolean prefixCacheAllowed) {
  public Requirements {
    if (tiers.isEmpty() || formats.isEmpty()) {
      throw new IllegalArgumentException("a component accepts at least one tier and one format");
    }
    tiers = Set.copyOf(EnumSet.copyOf(tiers));
    formats = Set.copyOf(EnumSet.copyOf(formats));
  }

  /** Shared tables, GPU only, bf16, no summaries, prefix caching allowed: what full KV needs. */
  public static Requirements dense() {
    return new Requirements(Granularity.SHARED, EnumSet.of(Tier.GPU), EnumSet.of(PageFormat.BF16), false, true);
  }
}
