package io.kvasir.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.Kvasir;
import io.kvasir.ops.BackendReport;
import io.kvasir.ops.CheckResult;
import io.kvasir.ops.SelfCheckReport;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import org.junit.jupiter.api.Test;
import io.kvasir.testing.CliRun;
import picocli.CommandLine;

/** {@code kvasir info}, run in-process. */
class KvasirCliTest {
  private static CliRun run(String... args) {
    return CliRun.of(KvasirCli.commandLine(), args);
  }

  private static void assertContains(String text, String... parts) {
    for (String p : parts) {
      assertTrue(text.contains(p), () -> "missing \"" + p + "\" in:\n" + text);
    }
  }

  @Test
  void infoPrintsEverySectionAndPassesTheSelfCheck() {
    CliRun r = run("info");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertContains(r.out(), "Kvasir\n", "library    kvasir ", "C ABI      version " + Kvasir.ABI_VERSION + " (bindings expect " + Kvasir.ABI_VERSION + ")", "\nCPU\n",
        "cores", "SIMD", "\nCUDA devices (libkvasir)\n", "\nCUDA driver (JavaCPP presets)\n", "\nSelf-check (seed ",
        "CPU:0   attention_decode[bf16,d=128", "pass", "0 failed: PASSED");
    assertTrue(r.out().indexOf("CPU\n") < r.out().indexOf("CUDA devices"), "sections in order");
  }

  @Test
  void noSelfCheckSkipsIt() {
    CliRun r = run("info", "--no-self-check");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertContains(r.out(), "Self-check: skipped");
    assertFalse(r.out().contains("PASSED"));
  }

  @Test
  void withoutCudaTheReasonIsPrinted() {
    CliRun r = run("info", "--no-self-check");
    if (!io.kvasir.nativeapi.Devices.count(Backend.CUDA).available()) {
      assertContains(r.out(), "  none       ", "no CUDA driver: ");
    } else {
      assertContains(r.out(), "  [0]        ", " SMs", "free of");
    }
  }

  @Test
  void rooflineReportsBandwidth() {
    CliRun r = run("--verbose", "info", "--no-self-check", "--roofline");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertContains(r.out(), "Roofline", "CPU:0      read ", " GB/s, copy ");
  }

  @Test
  void aFixedSeedIsUsed() {
    CliRun r = run("info", "--seed", "12345");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertContains(r.out(), "Self-check (seed 12345)");
  }

  @Test
  void aFailedCheckFailsTheCommand() {
    CheckResult bad = new CheckResult("merge_state[f32]", Backend.CPU, 0, false, 1.0, 1e-6, 7, "o[0][0]: got 1, want 0");
    CheckResult good = new CheckResult("page_copy[gather]", Backend.CPU, 0, true, 0, 0, 8, "");
    SelfCheckReport report = new SelfCheckReport(99, List.of(new BackendReport(Backend.CPU, 0, "cpu",
        List.of(good, bad))), List.of());
    StringWriter text = new StringWriter();
    int exit = InfoCommand.printReport(new PrintWriter(text, true), report);
    assertEquals(InfoCommand.EXIT_CHECK_FAILED, exit);
    assertContains(text.toString(), "FAIL", "o[0][0]: got 1, want 0", "2 checks, 1 failed: FAILED (replay with --seed 99)");
  }

  @Test
  void usageAndVersion() {
    CliRun help = run();
    assertEquals(0, help.exit());
    assertContains(help.out(), "Usage: kvasir", "info");
    CliRun version = run("--version");
    assertEquals(0, version.exit());
    assertContains(version.out(), "kvasir ");
    CliRun unknown = run("frobnicate");
    assertEquals(CommandLine.ExitCode.USAGE, unknown.exit());
  }

  @Test
  void offlineDefaultsAreSetForLaterTokenizers() {
    KvasirCli.prepareSystemProperties();
    assertEquals("true", System.getProperty("ai.djl.offline"));
  }
}
