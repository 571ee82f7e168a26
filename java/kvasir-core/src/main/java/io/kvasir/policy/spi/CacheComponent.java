package io.kvasir.policy.spi;

import io.kvasir.policy.Policy;
import java.util.Map;

/**
 * One component of a cache policy, on one axis. The engine calls the hooks on its scheduler
 * thread, once per step or per page event, never per layer; per-layer work is chosen by
 * {@link #layerWork()} and runs inside the native step.
 *
 * <p>OPKV's plugin callbacks map onto this split (docs/cache-policy-spi.md):
 * {@code register} is construction plus {@link #requirements()}; {@code preprocess} is
 * {@link #beforeStep}; {@code select} is the native selection kernel named by
 * {@link #layerWork()} (or, for a host-side planner, the pages it names in {@link #beforeStep});
 * {@code fetch} is a batched recall the component starts in {@link #beforeStep} and
 * {@code recall} the wait plus the page table the native step reads; the page lifecycle is
 * {@link #onPageFilled}, {@link #onPageEvicted} and {@link #onSequenceFinished}.
 */
public interface CacheComponent {
  /** The spec component this was built from. */
  Policy.Component spec();

  /** What it needs; the composition refuses conflicting needs with a message naming both. */
  Requirements requirements();

  /** Per-layer decode work, or {@code null} when this component does not choose the attended pages. */
  default LayerWork layerWork() {
    return null;
  }

  /** Once per engine step, before the native step: plan placement, start recalls. */
  default void beforeStep(StepView step) {}

  /** A page of a sequence became full (its key summary is current from this step on). */
  default void onPageFilled(long seqId, int logicalPage, int physicalPage) {}

  /** A page left the GPU tier or the sequence (eviction, preemption). */
  default void onPageEvicted(long seqId, int logicalPage, int physicalPage) {}

  /** The sequence finished or was cancelled; drop its per-sequence state. */
  default void onSequenceFinished(long seqId) {}

  /**
   * What this component has counted since it was built, by name: the standard names of
   * {@link PolicyCounters#POLICY} where they apply, plus any of its own. Read once per run, on the
   * scheduler thread.
   */
  default Map<String, Long> counters() {
    return Map.of();
  }
}
