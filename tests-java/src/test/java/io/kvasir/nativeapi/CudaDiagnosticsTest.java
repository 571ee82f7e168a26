package io.kvasir.nativeapi;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/** Driver facts through the CUDA presets: never a crash, with or without a driver. */
class CudaDiagnosticsTest {
  @Test
  void reportNeverThrows() {
    CudaDiagnostics.Report first = assertDoesNotThrow(CudaDiagnostics::report);
    // Asking again must not trip over a half-initialized preset class.
    CudaDiagnostics.Report second = assertDoesNotThrow(CudaDiagnostics::report);
    assertEquals(first.available(), second.available());
  }

  @Test
  void withoutADriverTheReportSaysWhy() {
    CudaDiagnostics.Report r = CudaDiagnostics.report();
    assumeFalse(r.available(), "a CUDA driver is present");
    assertTrue(r.reason().startsWith("no CUDA driver"), r.reason());
    assertTrue(r.reason().length() > "no CUDA driver: ".length(), "the reason names what is missing");
    assertEquals(0, r.driverVersion());
    assertTrue(r.devices().isEmpty());
  }

  @Test
  void withADriverVersionsAndMemoryAreReported() {
    CudaDiagnostics.Report r = CudaDiagnostics.report();
    assumeTrue(r.available(), "no CUDA driver here");
    assertTrue(r.driverVersion() >= 13000, "driver " + r.driverVersion());
    assertTrue(r.runtimeVersion() >= 13000, "runtime " + r.runtimeVersion());
    DeviceCount count = Devices.count(Backend.CUDA);
    assertEquals(count.count(), r.devices().size(), r.reason());
    for (CudaDiagnostics.DeviceMemory m : r.devices()) {
      assertTrue(m.totalBytes() > 0 && m.freeBytes() > 0 && m.freeBytes() <= m.totalBytes(), m.toString());
      DeviceInfo info = Devices.props(Backend.CUDA, m.ordinal());
      assertEquals(info.totalMemoryBytes(), m.totalBytes(), "the presets and libkvasir see the same device");
    }
  }

  @Test
  void versionsPrintAsCudaDoes() {
    assertEquals("13.0", CudaDiagnostics.versionString(13000));
    assertEquals("12.8", CudaDiagnostics.versionString(12080));
    assertFalse(CudaDiagnostics.versionString(0).isEmpty());
  }
}
