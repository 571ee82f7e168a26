package io.kvasir.ops;

import io.kvasir.nativeapi.Backend;
import java.util.List;

/** The self-checks of one device. */
public record BackendReport(Backend backend, int device, String deviceName, List<CheckResult> checks) {
  public BackendReport {
    checks = List.copyOf(checks);
  }

  public boolean passed() {
    return checks.stream().allMatch(CheckResult::passed);
  }
}
