package io.kvasir.nativeapi;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** Backends, their devices and device properties. */
public final class Devices {
  private Devices() {}

  /**
   * Usable devices of a backend: CPU always 1; CUDA the devices the driver shows. No device is an
   * answer, not an error: the count is 0 and the reason comes from the library.
   */
  public static DeviceCount count(Backend backend) {
    Objects.requireNonNull(backend, "backend");
    Kvasir.ensureLoaded();
    int[] count = new int[1];
    int status = KvasirLibrary.kv_device_count(backend.code(), count);
    if (status == Status.NO_DEVICE.code()) {
      return new DeviceCount(backend, 0, KvasirException.fromLastError(status).nativeMessage());
    }
    KvasirException.check(status);
    return new DeviceCount(backend, count[0], "");
  }

  /** Properties of one device. */
  public static DeviceInfo props(Backend backend, int ordinal) {
    Objects.requireNonNull(backend, "backend");
    Kvasir.ensureLoaded();
    try (KvasirLibrary.kv_device_props p = new KvasirLibrary.kv_device_props()) {
      KvasirException.check(KvasirLibrary.kv_device_get_props(backend.code(), ordinal, p));
      return new DeviceInfo(Backend.fromCode(p.backend()), p.ordinal(), p.name().getString(), p.arch().getString(),
          p.total_memory_bytes(), p.compute_units(), p.compute_major(), p.compute_minor(), p.pci_bus_id(),
          p.l2_cache_bytes(), p.shared_memory_per_block_bytes());
    }
  }

  /** Properties of every usable device of a backend (empty when there is none). */
  public static List<DeviceInfo> list(Backend backend) {
    DeviceCount count = count(backend);
    List<DeviceInfo> devices = new ArrayList<>(count.count());
    for (int i = 0; i < count.count(); i++) {
      devices.add(props(backend, i));
    }
    return List.copyOf(devices);
  }
}
