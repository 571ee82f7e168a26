package io.kvasir.ops;

import java.util.List;

/**
 * Everything one {@link SelfCheck} run found.
 *
 * @param seed the run seed every check's seed derives from
 * @param notes backends that were not checked and why (e.g. no CUDA device)
 */
public record SelfCheckReport(long seed, List<BackendReport> backends, List<String> notes) {
  public SelfCheckReport {
    backends = List.copyOf(backends);
    notes = List.copyOf(notes);
  }

  /** Whether every check on every device passed (and at least one ran). */
  public boolean passed() {
    return !backends.isEmpty() && backends.stream().allMatch(BackendReport::passed);
  }

  public int checkCount() {
    return backends.stream().mapToInt(b -> b.checks().size()).sum();
  }

  public long failureCount() {
    return backends.stream().flatMap(b -> b.checks().stream()).filter(c -> !c.passed()).count();
  }
}
