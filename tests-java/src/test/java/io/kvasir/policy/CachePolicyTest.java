package io.kvasir.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.policy.spi.CacheComponent;
import io.kvasir.policy.spi.CachePolicy;
import io.kvasir.policy.spi.Granularity;
import io.kvasir.policy.spi.LayerWork;
import io.kvasir.policy.spi.PageFormat;
import io.kvasir.policy.spi.Requirements;
import io.kvasir.policy.spi.Tier;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Building policies through the SPI: requirements, per-layer work, and refused combinations. */
class CachePolicyTest {
  @Test
  void fullIsDenseSharedGpuBf16WithPrefixCaching() {
    CachePolicy p = CachePolicy.build(Policy.defaults(), 16);
    assertEquals(LayerWork.all(), p.layerWork());
    assertEquals(Granularity.SHARED, p.granularity());
    assertEquals(EnumSet.of(Tier.GPU), EnumSet.copyOf(p.tiers()));
    assertEquals(EnumSet.of(PageFormat.BF16), EnumSet.copyOf(p.formats()));
    assertFalse(p.keySummaries());
    assertTrue(p.prefixCache());
    assertFalse(CachePolicy.build(Policy.defaults().withoutPrefixCache(), 16).prefixCache());
  }

  @Test
  void questSelectsTopKPagesAndNeedsKeySummaries() {
    CachePolicy p = CachePolicy.build(Policy.parse("quest:k=32"), 16);
    assertEquals(new LayerWork(LayerWork.Selection.QUEST, 32), p.layerWork());
    assertTrue(p.keySummaries());
    assertEquals(64, CachePolicy.build(Policy.parse("quest"), 16).layerWork().topKPages(), "default K");
    assertEquals(63, CachePolicy.build(Policy.parse("quest:k_tokens=1000"), 16).layerWork().topKPages(),
        "k_tokens rounds up to whole pages");
    assertEquals(1000, CachePolicy.build(Policy.parse("quest:k_tokens=1000"), 1).layerWork().topKPages());
  }

  // A stand-in for components to come, declaring what they will need.
  private record Declared(Policy.Component spec, Requirements requirements, LayerWork layerWork)
      implements CacheComponent {}

  private static Policy.Component named(String name, Axis axis) {
    return new Policy.Component(new ComponentType(name, axis, "test component", List.of(),
        v -> java.util.Optional.empty()), Map.of());
  }

  @Test
  void conflictingRequirementsAreRefusedNamingTheComponents() {
    Policy quest = Policy.parse("quest:k=8");
    CachePolicy built = CachePolicy.build(quest, 16);
    List<CacheComponent> parts = new ArrayList<>(built.components());
    parts.add(new Declared(named("hostonly", Axis.EVICTION),
        new Requirements(Granularity.SHARED, EnumSet.of(Tier.HOST), EnumSet.of(PageFormat.BF16), false, true), null));
    PolicySpecException e = assertThrows(PolicySpecException.class, () -> CachePolicy.compose(quest, parts));
    assertTrue(e.getMessage().contains("hostonly") && e.getMessage().contains("tier"), e.getMessage());

    List<CacheComponent> perHead = new ArrayList<>(built.components());
    perHead.add(new Declared(named("evict", Axis.EVICTION),
        new Requirements(Granularity.PER_HEAD, EnumSet.of(Tier.GPU), EnumSet.of(PageFormat.BF16), false, false),
        null));
    e = assertThrows(PolicySpecException.class, () -> CachePolicy.compose(quest, perHead));
    assertTrue(e.getMessage().contains("per-head"), e.getMessage());

    Policy full = Policy.defaults();
    List<CacheComponent> rewriting = new ArrayList<>(CachePolicy.build(full, 16).components());
    rewriting.add(new Declared(named("evict", Axis.EVICTION),
        new Requirements(Granularity.PER_HEAD, EnumSet.of(Tier.GPU), EnumSet.of(PageFormat.BF16), false, false),
        null));
    e = assertThrows(PolicySpecException.class, () -> CachePolicy.compose(full, rewriting));
    assertTrue(e.getMessage().contains("--no-prefix-cache"), e.getMessage());
    CachePolicy ok = CachePolicy.compose(full.withoutPrefixCache(), rewriting.subList(0, rewriting.size()));
    assertEquals(Granularity.PER_HEAD, ok.granularity());

    List<CacheComponent> twoSelectors = new ArrayList<>(built.components());
    twoSelectors.add(new Declared(named("other", Axis.EVICTION), Requirements.dense(),
        new LayerWork(LayerWork.Selection.QUEST, 4)));
    e = assertThrows(PolicySpecException.class, () -> CachePolicy.compose(quest, twoSelectors));
    assertTrue(e.getMessage().contains("choose the attended pages"), e.getMessage());
  }

  // A component that counts, as a recall policy will.
  private record Counting(Policy.Component spec, Map<String, Long> counters) implements CacheComponent {
    @Override
    public Requirements requirements() {
      return Requirements.dense();
    }
  }

  @Test
  void countersSumTheComponentsUnderTheStandardNames() {
    Policy full = Policy.defaults();
    CachePolicy plain = CachePolicy.build(full, 16);
    assertEquals(io.kvasir.policy.spi.PolicyCounters.POLICY, List.copyOf(plain.counters().keySet()));
    assertTrue(plain.counters().values().stream().allMatch(v -> v == 0));
    List<CacheComponent> parts = new ArrayList<>(plain.components());
    parts.add(new Counting(named("recall-a", Axis.EVICTION), Map.of("pages_recalled", 5L, "bytes_recalled", 640L)));
    parts.add(new Counting(named("recall-b", Axis.EVICTION), Map.of("pages_recalled", 2L, "own_counter", 9L)));
    Map<String, Long> c = CachePolicy.compose(full, parts).counters();
    assertEquals(7L, c.get("pages_recalled"));
    assertEquals(640L, c.get("bytes_recalled"));
    assertEquals(0L, c.get("reranks"));
    assertEquals(9L, c.get("own_counter"));
    assertEquals(Map.of("a", 3L, "b", -1L), io.kvasir.policy.spi.PolicyCounters.difference(Map.of("a", 4L, "b", 1L),
        Map.of("a", 7L, "b", 0L)));
  }
}
