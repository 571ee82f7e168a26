package io.kvasir.policy.spi;

import io.kvasir.policy.Axis;
import io.kvasir.policy.Policy;
import io.kvasir.policy.PolicySpecException;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A policy's components, built and checked against each other: the one object the engine asks
 * for page-table granularity, tiers, formats, key summaries, prefix caching and the per-layer
 * decode work, and whose hooks it calls.
 */
public final class CachePolicy {
  private final Policy policy;
  private final List<CacheComponent> components;
  private final Granularity granularity;
  private final Set<Tier> tiers;
  private final Set<PageFormat> formats;
  private final boolean keySummaries;
  private final boolean prefixCache;
  private final LayerWork layerWork;

  private CachePolicy(Policy policy, List<CacheComponent> components) {
    this.policy = policy;
    this.components = List.copyOf(components);
    Granularity g = Granularity.SHARED;
    Set<Tier> t = EnumSet.allOf(Tier.class);
    Set<PageFormat> f = EnumSet.allOf(PageFormat.class);
    boolean summaries = false;
    boolean prefixAllowed = true;
    LayerWork work = null;
    CacheComponent workOwner = null;
    for (CacheComponent c : components) {
      Requirements r = c.requirements();
      if (r.granularity() == Granularity.PER_HEAD) {
        g = Granularity.PER_HEAD;
      }
      t.retainAll(r.tiers());
      f.retainAll(r.formats());
      summaries |= r.keySummaries();
      prefixAllowed &= r.prefixCacheAllowed();
      if (t.isEmpty()) {
        throw refuse(policy, c, "no memory tier is acceptable to every component (" + c.spec().name() + " takes "
            + r.tiers() + ")");
      }
      if (f.isEmpty()) {
        throw refuse(policy, c, "no page format is readable by every component (" + c.spec().name() + " reads "
            + r.formats() + ")");
      }
      if (c.layerWork() != null) {
        if (work != null && !work.equals(LayerWork.all()) && !c.layerWork().equals(LayerWork.all())) {
          throw refuse(policy, c, "both " + workOwner.spec().name() + " and " + c.spec().name()
              + " choose the attended pages");
        }
        if (work == null || work.equals(LayerWork.all())) {
          work = c.layerWork();
          workOwner = c;
        }
      }
    }
    if (g == Granularity.PER_HEAD) {
      for (CacheComponent c : components) {
        if (c.layerWork() != null && c.layerWork().selection() == LayerWork.Selection.QUEST) {
          throw refuse(policy, c, "quest scores shared page tables; it cannot run with per-head page tables yet");
        }
      }
    }
    boolean prefixAsked = policy.prefixCache();
    if (prefixAsked && !prefixAllowed) {
      CacheComponent blocker = components.stream().filter(c -> !c.requirements().prefixCacheAllowed()).findFirst()
          .orElseThrow();
      throw refuse(policy, blocker, blocker.spec().name() + " rewrites full pages, so they cannot be shared by "
          + "content; add --no-prefix-cache");
    }
    this.granularity = g;
    this.tiers = Set.copyOf(t);
    this.formats = Set.copyOf(f);
    this.keySummaries = summaries;
    this.prefixCache = prefixAsked;
    this.layerWork = work == null ? LayerWork.all() : work;
  }

  /** Builds the components of {@code policy} for pages of {@code pageTokens} tokens and checks them together. */
  public static CachePolicy build(Policy policy, int pageTokens) {
    if (pageTokens < 1) {
      throw new IllegalArgumentException("pageTokens=" + pageTokens + " must be >= 1");
    }
    List<CacheComponent> list = new ArrayList<>();
    for (Axis axis : Axis.values()) {
      policy.component(axis).ifPresent(c -> list.add(BuiltinComponents.create(c, pageTokens)));
    }
    return new CachePolicy(policy, list);
  }

  /** Composes given components (tests, and components built outside this package). */
  public static CachePolicy compose(Policy policy, List<CacheComponent> components) {
    return new CachePolicy(policy, components);
  }

  private static PolicySpecException refuse(Policy policy, CacheComponent c, String why) {
    return new PolicySpecException("policy '" + policy.spec() + "': " + why);
  }

  public Policy policy() {
    return policy;
  }

  public List<CacheComponent> components() {
    return components;
  }

  public Granularity granularity() {
    return granularity;
  }

  /** Tiers every component accepts. */
  public Set<Tier> tiers() {
    return tiers;
  }

  /** Formats every component reads. */
  public Set<PageFormat> formats() {
    return formats;
  }

  public boolean keySummaries() {
    return keySummaries;
  }

  public boolean prefixCache() {
    return prefixCache;
  }

  /** The per-layer decode work of every step. */
  public LayerWork layerWork() {
    return layerWork;
  }

  public void beforeStep(StepView step) {
    for (CacheComponent c : components) {
      c.beforeStep(step);
    }
  }

  public void onPageFilled(long seqId, int logicalPage, int physicalPage) {
    for (CacheComponent c : components) {
      c.onPageFilled(seqId, logicalPage, physicalPage);
    }
  }

  public void onPageEvicted(long seqId, int logicalPage, int physicalPage) {
    for (CacheComponent c : components) {
      c.onPageEvicted(seqId, logicalPage, physicalPage);
    }
  }

  public void onSequenceFinished(long seqId) {
    for (CacheComponent c : components) {
      c.onSequenceFinished(seqId);
    }
  }

  /**
   * Every component's counters summed by name, the standard policy names first (0 when no
   * component counts them); cumulative since the policy was built.
   */
  public Map<String, Long> counters() {
    Map<String, Long> out = new LinkedHashMap<>();
    for (String name : PolicyCounters.POLICY) {
      out.put(name, 0L);
    }
    for (CacheComponent c : components) {
      c.counters().forEach((name, v) -> out.merge(name, v, Long::sum));
    }
    return out;
  }

  @Override
  public String toString() {
    return policy.resolved() + " (" + granularity + " tables, tiers " + tiers + ", " + layerWork + ")";
  }
}
