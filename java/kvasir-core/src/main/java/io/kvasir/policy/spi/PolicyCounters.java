package io.kvasir.policy.spi;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The names of the counters a run reports from its cache (docs/benchmarks.md, "Policy counters").
 * The cache manager fills the prefix-cache and copy counters; policies fill the rest through
 * {@link CacheComponent#counters()}. Every standard name is always reported (0 when nothing
 * counted it), so records of different policies have the same keys; a component may add names
 * of its own. Counters are cumulative: a run reports the difference between its end and start.
 */
public final class PolicyCounters {
  /** Prompt tokens looked up in the prefix cache (whole pages). */
  public static final String PREFIX_TOKENS_QUERIED = "prefix_tokens_queried";
  /** Of those, tokens whose K and V came from the cache. */
  public static final String PREFIX_TOKENS_HIT = "prefix_tokens_hit";
  /** Free cached pages whose slot was taken for a new page (evictions from the prefix cache). */
  public static final String PREFIX_PAGES_EVICTED = "prefix_pages_evicted";
  /** Copy-on-write page copies. */
  public static final String PAGES_COPIED = "pages_copied";
  /** Pages copied from a lower tier back to the device (FlexiCache). */
  public static final String PAGES_RECALLED = "pages_recalled";
  /** Bytes of those copies. */
  public static final String BYTES_RECALLED = "bytes_recalled";
  /** Re-rankings of the resident page set (FlexiCache's every R steps). */
  public static final String RERANKS = "reranks";
  /** Pages dropped or moved off the device by an eviction or placement policy. */
  public static final String PAGES_EVICTED = "pages_evicted";
  /** Tokens removed by an eviction policy (SkipKV, H2O, SnapKV, R-KV). */
  public static final String TOKENS_EVICTED = "tokens_evicted";

  /** The names the cache manager counts. */
  public static final List<String> MANAGER = List.of(PREFIX_TOKENS_QUERIED, PREFIX_TOKENS_HIT, PREFIX_PAGES_EVICTED,
      PAGES_COPIED);
  /** The names policies count (0 until a policy does). */
  public static final List<String> POLICY = List.of(PAGES_RECALLED, BYTES_RECALLED, RERANKS, PAGES_EVICTED,
      TOKENS_EVICTED);

  private PolicyCounters() {}

  /** {@code after - before} per name of {@code after} (a name missing before counts from 0). */
  public static Map<String, Long> difference(Map<String, Long> before, Map<String, Long> after) {
    Map<String, Long> out = new LinkedHashMap<>();
    after.forEach((name, v) -> out.put(name, v - before.getOrDefault(name, 0L)));
    return out;
  }
}
