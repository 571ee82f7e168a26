package io.kvasir.nativeapi;

import java.util.ArrayList;
import java.util.List;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * Driver-side facts through the JavaCPP CUDA presets, independent of libkvasir (which links the
 * CUDA runtime statically and may see a different runtime version): driver and runtime versions
 * and each device's free/total memory. Never throws: without a driver the report says why.
 *
 * <p>Only calls that exist in CUDA 13.0 are made: the presets bind newer cudart symbols lazily,
 * and calling one of those on an older runtime aborts the JVM.
 */
public final class CudaDiagnostics {
  private static final Logger LOG = LogManager.getLogger(CudaDiagnostics.class);

  private static final Object LOCK = new Object();
  private static String loadFailure; // guarded by LOCK; null = not tried or loaded
  private static boolean loaded; // guarded by LOCK

  private CudaDiagnostics() {}

  /** Free and total memory of one device, as {@code cudaMemGetInfo} reports it. */
  public record DeviceMemory(int ordinal, long freeBytes, long totalBytes) {}

  /**
   * What the CUDA driver and runtime say.
   *
   * @param available whether the CUDA runtime loaded and a driver answered
   * @param reason why not, or what failed partway (device count, a device's memory); empty when all went well
   * @param driverVersion e.g. 13000 for 13.0 (the newest CUDA the driver supports); 0 if unknown
   * @param runtimeVersion version of the runtime the presets loaded; 0 if unknown
   */
  public record Report(boolean available, String reason, int driverVersion, int runtimeVersion,
      List<DeviceMemory> devices) {
    public Report {
      devices = List.copyOf(devices);
    }

    static Report unavailable(String reason) {
      return new Report(false, reason, 0, 0, List.of());
    }
  }

  /** "13.0" for 13000: CUDA encodes versions as 1000 * major + 10 * minor. */
  public static String versionString(int version) {
    return (version / 1000) + "." + (version % 1000) / 10;
  }

  /** Queries the driver now. Safe without a driver, a GPU or the CUDA libraries. */
  public static Report report() {
    String failure = load();
    if (failure != null) {
      return Report.unavailable(failure);
    }
    try {
      return query();
    } catch (Throwable t) { // a missing symbol or a broken install must not take the caller down
      LOG.warn("CUDA diagnostics failed", t);
      return Report.unavailable("CUDA diagnostics failed: " + t);
    }
  }

  /** Loads the presets' cudart once; returns the reason it cannot be used, or null. */
  private static String load() {
    synchronized (LOCK) {
      if (!loaded && loadFailure == null) {
        try {
          Loader.load(cudart.class);
          loaded = true;
        } catch (Throwable t) { // UnsatisfiedLinkError without libcuda.so.1 or libcudart.so.13
          // JavaCPP falls back to java.library.path and throws that failure; the cause says what is missing.
          loadFailure = "no CUDA driver: " + rootMessage(t);
          LOG.info("CUDA runtime not loadable through the presets: {}", loadFailure);
          LOG.debug("loading the CUDA presets failed", t);
        }
      }
      return loaded ? null : loadFailure;
    }
  }

  private static Report query() {
    int[] driver = new int[1];
    int[] runtime = new int[1];
    int status = cudart.cudaDriverGetVersion(driver);
    if (status != cudart.cudaSuccess) {
      return Report.unavailable("no CUDA driver: cudaDriverGetVersion: " + errorString(status));
    }
    if (driver[0] == 0) {
      return Report.unavailable("no CUDA driver installed (cudaDriverGetVersion reports 0)");
    }
    status = cudart.cudaRuntimeGetVersion(runtime);
    if (status != cudart.cudaSuccess) {
      return new Report(false, "cudaRuntimeGetVersion: " + errorString(status), driver[0], 0, List.of());
    }
    int[] count = new int[1];
    status = cudart.cudaGetDeviceCount(count);
    if (status != cudart.cudaSuccess) {
      return new Report(true, "cudaGetDeviceCount: " + errorString(status), driver[0], runtime[0], List.of());
    }
    int[] previous = {0};
    cudart.cudaGetDevice(previous);
    List<DeviceMemory> devices = new ArrayList<>();
    List<String> problems = new ArrayList<>();
    try (SizeTPointer free = new SizeTPointer(1); SizeTPointer total = new SizeTPointer(1)) {
      for (int i = 0; i < count[0]; i++) {
        status = cudart.cudaSetDevice(i);
        if (status == cudart.cudaSuccess) {
          status = cudart.cudaMemGetInfo(free, total);
        }
        if (status == cudart.cudaSuccess) {
          devices.add(new DeviceMemory(i, free.get(), total.get()));
        } else {
          problems.add("device " + i + ": " + errorString(status));
        }
      }
    } finally {
      if (count[0] > 0) {
        cudart.cudaSetDevice(previous[0]);
      }
    }
    return new Report(true, String.join("; ", problems), driver[0], runtime[0], devices);
  }

  private static String errorString(int status) {
    BytePointer name = cudart.cudaGetErrorName(status);
    BytePointer text = cudart.cudaGetErrorString(status);
    return (name == null ? "error " + status : name.getString()) + " (" + (text == null ? "?" : text.getString()) + ")";
  }

  private static String rootMessage(Throwable t) {
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    String message = root.getMessage();
    return message == null ? root.toString() : message;
  }
}
