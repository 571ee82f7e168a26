package io.kvasir.cli;

import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.CpuIsa;
import io.kvasir.nativeapi.CudaDiagnostics;
import io.kvasir.nativeapi.DeviceCount;
import io.kvasir.nativeapi.DeviceInfo;
import io.kvasir.nativeapi.Devices;
import io.kvasir.nativeapi.Kvasir;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.nativeapi.Stream;
import io.kvasir.ops.BackendReport;
import io.kvasir.ops.CheckResult;
import io.kvasir.ops.SelfCheck;
import io.kvasir.ops.SelfCheckReport;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir info}: what this machine offers Kvasir, then proof that the kernels compute
 * correctly here. Exit code 0 when every self-check passed, 1 when one failed, 2 when the native
 * library cannot be used at all.
 */
@Command(name = "info", mixinStandardHelpOptions = true,
    description = "Print the native library, CPU and CUDA devices, then run the kernel self-check.")
final class InfoCommand implements Callable<Integer> {
  static final int EXIT_CHECK_FAILED = 1;
  static final int EXIT_NO_LIBRARY = 2;

  private static final Logger LOG = LogManager.getLogger(InfoCommand.class);

  @Spec
  CommandSpec spec;

  @Option(names = "--no-self-check", description = "Skip the kernel self-check.")
  boolean noSelfCheck;

  @Option(names = "--roofline", description = "Also measure each device's bandwidth ceilings (takes seconds).")
  boolean roofline;

  @Option(names = "--seed", description = "Seed of the self-check's random inputs (default: a fresh one, printed).")
  Long seed;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    try {
      Kvasir.ensureLoaded();
    } catch (IllegalStateException e) {
      LOG.error("libkvasir cannot be used", e);
      out.println("libkvasir: cannot be used: " + e.getMessage());
      out.flush();
      return EXIT_NO_LIBRARY;
    }
    printLibrary(out);
    printCpu(out);
    printCudaDevices(out);
    printCudaDriver(out);
    if (roofline) {
      printRoofline(out);
    }
    int exit = 0;
    if (noSelfCheck) {
      out.println();
      out.println("Self-check: skipped (--no-self-check)");
    } else {
      exit = printSelfCheck(out);
    }
    out.flush();
    return exit;
  }

  private static void printLibrary(PrintWriter out) {
    out.println("Kvasir");
    row(out, "library", Kvasir.buildInfo());
    row(out, "C ABI", "version " + Kvasir.abiVersion() + " (bindings expect " + Kvasir.ABI_VERSION + ")");
    row(out, "backends", "cpu " + compiled(Backend.CPU) + ", cuda " + compiled(Backend.CUDA));
  }

  private static String compiled(Backend backend) {
    return Kvasir.isCompiled(backend) ? "compiled in" : "not compiled in";
  }

  private static void printCpu(PrintWriter out) {
    DeviceInfo cpu = Devices.props(Backend.CPU, 0);
    out.println();
    out.println("CPU");
    row(out, "name", cpu.name());
    row(out, "cores", cpu.computeUnits() + " logical");
    row(out, "SIMD", CpuIsa.active().name().toLowerCase(Locale.ROOT) + " (kernels use " + cpu.arch() + ")");
    row(out, "memory", Format.bytes(cpu.totalMemoryBytes()));
  }

  private static void printCudaDevices(PrintWriter out) {
    out.println();
    out.println("CUDA devices (libkvasir)");
    DeviceCount count = Devices.count(Backend.CUDA);
    if (!count.available()) {
      row(out, "none", count.reason());
      return;
    }
    for (int i = 0; i < count.count(); i++) {
      DeviceInfo d = Devices.props(Backend.CUDA, i);
      row(out, "[" + i + "]", String.format(Locale.ROOT, "%s, %s (compute %d.%d), %s, %d SMs, L2 %s, PCI bus %d",
          d.name(), d.arch(), d.computeMajor(), d.computeMinor(), Format.bytes(d.totalMemoryBytes()),
          d.computeUnits(), Format.bytes(d.l2CacheBytes()), d.pciBusId()));
    }
  }

  private static void printCudaDriver(PrintWriter out) {
    out.println();
    out.println("CUDA driver (JavaCPP presets)");
    CudaDiagnostics.Report r = CudaDiagnostics.report();
    if (!r.available()) {
      row(out, "state", r.reason().startsWith("no CUDA driver") ? r.reason() : "no CUDA driver: " + r.reason());
      return;
    }
    row(out, "driver", "supports CUDA " + CudaDiagnostics.versionString(r.driverVersion()));
    row(out, "runtime", "CUDA " + CudaDiagnostics.versionString(r.runtimeVersion()));
    for (CudaDiagnostics.DeviceMemory m : r.devices()) {
      row(out, "[" + m.ordinal() + "]", Format.bytes(m.freeBytes()) + " free of " + Format.bytes(m.totalBytes()));
    }
    if (!r.reason().isEmpty()) {
      row(out, "note", r.reason());
    }
  }

  private static void printRoofline(PrintWriter out) {
    out.println();
    out.println("Roofline (median of the library's default repetitions)");
    probe(out, Backend.CPU, 0);
    DeviceCount cuda = Devices.count(Backend.CUDA);
    for (int i = 0; i < cuda.count(); i++) {
      probe(out, Backend.CUDA, i);
    }
  }

  private static void probe(PrintWriter out, Backend backend, int device) {
    try (Stream stream = Stream.create(backend, device)) {
      Roofline r = Roofline.probe(stream, 0, 0);
      StringBuilder line = new StringBuilder()
          .append("read ").append(Format.rate(r.readBytesPerS()))
          .append(", copy ").append(Format.rate(r.copyBytesPerS()));
      if (r.h2dBytesPerS() > 0) {
        line.append(", h2d ").append(Format.rate(r.h2dBytesPerS()));
      }
      if (r.d2hBytesPerS() > 0) {
        line.append(", d2h ").append(Format.rate(r.d2hBytesPerS()));
      }
      if (r.gemmBf16FlopsPerS() > 0) {
        line.append(String.format(Locale.ROOT, ", bf16 GEMM %.1f TFLOP/s", r.gemmBf16FlopsPerS() / 1e12));
      }
      line.append(" (working set ").append(Format.bytes(r.bufferBytes())).append(')');
      row(out, backend + ":" + device, line.toString());
    } catch (RuntimeException e) {
      LOG.warn("roofline probe failed on {}:{}", backend, device, e);
      row(out, backend + ":" + device, "probe failed: " + e.getMessage());
    }
  }

  private int printSelfCheck(PrintWriter out) {
    SelfCheck.Builder builder = SelfCheck.builder();
    if (seed != null) {
      builder.optSeed(seed);
    }
    return printReport(out, builder.build().run());
  }

  /** Prints a self-check report as a table; returns the exit code it calls for. */
  static int printReport(PrintWriter out, SelfCheckReport report) {
    out.println();
    out.println("Self-check (seed " + report.seed() + ")");
    out.println(String.format(Locale.ROOT, "  %-7s %-62s %-6s %10s %10s", "device", "check", "result", "error",
        "tolerance"));
    for (BackendReport b : report.backends()) {
      for (CheckResult c : b.checks()) {
        out.println(String.format(Locale.ROOT, "  %-7s %-62s %-6s %10.3g %10.3g", b.backend() + ":" + b.device(),
            c.name(), c.passed() ? "pass" : "FAIL", c.maxError(), c.tolerance()));
        if (!c.passed()) {
          out.println("          " + c.detail());
        }
      }
    }
    for (String note : report.notes()) {
      out.println("  note: " + note);
    }
    out.println(String.format(Locale.ROOT, "  %d checks, %d failed: %s", report.checkCount(), report.failureCount(),
        report.passed() ? "PASSED" : "FAILED (replay with --seed " + report.seed() + ")"));
    return report.passed() ? 0 : EXIT_CHECK_FAILED;
  }

  private static void row(PrintWriter out, String key, String value) {
    out.println(String.format(Locale.ROOT, "  %-10s %s", key, value));
  }
}
