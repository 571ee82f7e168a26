package io.kvasir.policy.spi;

import io.kvasir.policy.Components;
import io.kvasir.policy.Policy;

/** The components Kvasir implements today: bf16, full, quest and prefix. */
final class BuiltinComponents {
  private BuiltinComponents() {}

  /** The default number of pages Quest attends per step (Quest's and FlexiCache's K = 64). */
  static final int QUEST_DEFAULT_PAGES = 64;

  static CacheComponent create(Policy.Component c, int pageTokens) {
    if (c.type().equals(Components.BF16) || c.type().equals(Components.FULL)) {
      return new Plain(c, Requirements.dense(), c.type().equals(Components.FULL) ? LayerWork.all() : null);
    }
    if (c.type().equals(Components.PREFIX)) {
      return new Plain(c, Requirements.dense(), null);
    }
    if (c.type().equals(Components.QUEST)) {
      int pages = c.values().containsKey("k_tokens")
          ? (int) Math.min(Integer.MAX_VALUE, (c.intValue("k_tokens", 0) + pageTokens - 1) / pageTokens)
          : (int) c.intValue("k", QUEST_DEFAULT_PAGES);
      Requirements r = new Requirements(Granularity.SHARED, java.util.EnumSet.of(Tier.GPU),
          java.util.EnumSet.of(PageFormat.BF16), true, true);
      return new Plain(c, r, new LayerWork(LayerWork.Selection.QUEST, pages));
    }
    throw new IllegalArgumentException("component " + c.name() + " is registered in the spec syntax but has no "
        + "implementation in this build");
  }

  /** A component whose only behaviour is its requirements and layer work. */
  private record Plain(Policy.Component spec, Requirements requirements, LayerWork layerWork)
      implements CacheComponent {}
}
