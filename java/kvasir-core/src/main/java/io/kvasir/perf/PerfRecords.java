package io.kvasir.perf;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DeviceInfo;
import io.kvasir.nativeapi.Devices;
import io.kvasir.nativeapi.Kvasir;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.nativeapi.Stream;
import java.time.LocalDate;
import java.time.ZoneOffset;

/**
 * The header of a perf record. The GPU script ({@code ci/gpu.sh remote}) exports
 * {@code KVASIR_GIT_COMMIT} (the packed commit) and {@code KVASIR_DEVICE_LINE} (nvidia-smi's line);
 * without them the commit is "unknown" and the device is the library's description.
 */
public final class PerfRecords {
  /** The record format's name and version. */
  public static final String FORMAT = "kvasir-perf/1";

  private PerfRecords() {}

  /**
   * Puts record, topic, date (UTC), git_commit, device, library and command into {@code root}.
   *
   * @param command the command line that reproduces the record
   */
  public static ObjectNode header(ObjectNode root, String topic, Backend backend, int device, String command) {
    root.put("record", FORMAT);
    root.put("topic", topic);
    root.put("date", LocalDate.now(ZoneOffset.UTC).toString());
    String commit = System.getenv("KVASIR_GIT_COMMIT");
    root.put("git_commit", commit == null || commit.isEmpty() ? "unknown" : commit);
    root.put("device", deviceLine(backend, device));
    root.put("library", Kvasir.buildInfo());
    root.put("command", command);
    return root;
  }

  /** Measures the device's ceilings with the library's default working set and repetitions. */
  public static Roofline probe(Backend backend, int device) {
    try (Stream stream = Stream.create(backend, device)) {
      return Roofline.probe(stream, 0, 0);
    }
  }

  /** nvidia-smi's line when the GPU script gave it, else the device's name, arch and compute units. */
  public static String deviceLine(Backend backend, int device) {
    String line = System.getenv("KVASIR_DEVICE_LINE");
    if (line != null && !line.isEmpty()) {
      return line;
    }
    DeviceInfo info = Devices.props(backend, device);
    return info.name() + " (" + info.arch() + ", " + info.computeUnits() + " compute units)";
  }
}
