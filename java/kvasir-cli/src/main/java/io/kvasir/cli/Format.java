package io.kvasir.cli;

import java.util.Locale;

/** Human-readable sizes and rates for command output. */
final class Format {
  private Format() {}

  /** Binary units, as memory is sold: 1 GiB = 2^30 bytes. */
  static String bytes(long bytes) {
    if (bytes < 1024) {
      return bytes + " B";
    }
    String[] units = {"KiB", "MiB", "GiB", "TiB"};
    double value = bytes;
    int unit = -1;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return String.format(Locale.ROOT, "%.1f %s", value, units[unit]);
  }

  /** Decimal GB/s, as bandwidths are quoted. */
  static String rate(double bytesPerSecond) {
    return String.format(Locale.ROOT, "%.1f GB/s", bytesPerSecond / 1e9);
  }
}
