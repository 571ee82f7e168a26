package io.kvasir.nativeapi;

/**
 * Usable devices of a backend.
 *
 * @param reason why there are none (backend not compiled in, no driver, ...); empty when count &gt; 0
 */
public record DeviceCount(Backend backend, int count, String reason) {
  public boolean available() {
    return count > 0;
  }
}
