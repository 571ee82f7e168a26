package io.kvasir.nativeapi;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Loads libkvasir once per process and refuses to use a library built from another C ABI.
 *
 * <p>Every entry point of this package that does not already hold a handle calls
 * {@link #ensureLoaded()} first, so the ABI check runs before any other native call.
 */
public final class Kvasir {
  private static final Logger LOG = LogManager.getLogger(Kvasir.class);

  /**
   * The {@code KV_ABI_VERSION} of the header these bindings were written against. Bump it with
   * every change to a signature, struct layout or enum value of {@code include/kvasir/kvasir.h}.
   */
  public static final int ABI_VERSION = 4;

  private static final Object LOCK = new Object();
  private static volatile boolean loaded;
  private static RuntimeException failure; // guarded by LOCK; a failed load is not retried

  private Kvasir() {}

  /**
   * Loads the library (from this jar, through JavaCPP's cache) and checks its ABI version.
   * Cheap after the first call.
   *
   * @throws IllegalStateException when the library cannot be loaded or has another ABI version;
   *     every later call throws the same
   */
  public static void ensureLoaded() {
    if (loaded) {
      return;
    }
    synchronized (LOCK) {
      if (loaded) {
        return;
      }
      if (failure != null) {
        throw failure;
      }
      try {
        checkAbiVersion(KvasirLibrary.kv_abi_version());
      } catch (LinkageError e) {
        failure = new IllegalStateException("could not load libkvasir or its JNI glue from the kvasir-native jar"
            + " (io/kvasir/nativeapi/linux-x86_64/): " + e, e);
        throw failure;
      } catch (IllegalStateException e) {
        failure = e;
        throw e;
      }
      loaded = true;
      LOG.info("loaded {} (C ABI version {})", KvasirLibrary.kv_build_info(), ABI_VERSION);
    }
  }

  /**
   * Refuses a library whose ABI version differs from {@link #ABI_VERSION}: a mismatch means struct
   * layouts, enum values or signatures may differ, so any call could corrupt memory.
   *
   * @param libraryVersion what {@code kv_abi_version()} returned
   * @throws IllegalStateException naming both versions and what to rebuild
   */
  static void checkAbiVersion(int libraryVersion) {
    if (libraryVersion == ABI_VERSION) {
      return;
    }
    String stale = libraryVersion < ABI_VERSION
        ? "the native library is older than the Java bindings"
        : "the Java bindings are older than the native library";
    throw new IllegalStateException("libkvasir reports C ABI version " + libraryVersion
        + " but these Java bindings (kvasir-native) expect C ABI version " + ABI_VERSION + "; " + stale
        + ". Rebuild both from the same checkout: the native library (cmake --build build/native) and then"
        + " the kvasir-native jar (mvn package), which bundles libkvasir.so");
  }

  /** {@code kv_abi_version()} of the loaded library (equal to {@link #ABI_VERSION} once loaded). */
  public static int abiVersion() {
    ensureLoaded();
    return KvasirLibrary.kv_abi_version();
  }

  /** Library version and build facts, e.g. {@code "kvasir 0.1.0 (C++17; cpu avx2; ...)"}. */
  public static String buildInfo() {
    ensureLoaded();
    return KvasirLibrary.kv_build_info();
  }

  /** Whether the backend was compiled into the loaded library (devices may still be absent). */
  public static boolean isCompiled(Backend backend) {
    ensureLoaded();
    return KvasirLibrary.kv_backend_compiled(backend.code()) != 0;
  }

  /** The library's stable name of a status code, e.g. {@code KV_STATUS_NO_DEVICE}. */
  public static String statusName(int code) {
    ensureLoaded();
    return KvasirLibrary.kv_status_to_string(code);
  }
}
