package io.kvasir.nativeapi;

/**
 * Mirrors {@code kv_cpu_isa}: the SIMD level of the CPU kernels. The library picks the best level
 * the CPU supports when it loads; {@link #setMax} caps it so tests can run every level.
 */
public enum CpuIsa {
  SCALAR(0),
  /** AVX2 + FMA. */
  AVX2(1);

  private final int code;

  CpuIsa(int code) {
    this.code = code;
  }

  /** The {@code kv_cpu_isa} value. */
  public int code() {
    return code;
  }

  /** The level with this code; an unknown code is a library newer than these bindings. */
  public static CpuIsa fromCode(int code) {
    for (CpuIsa isa : values()) {
      if (isa.code == code) {
        return isa;
      }
    }
    throw new IllegalArgumentException("unknown kv_cpu_isa value " + code);
  }

  /** The level CPU kernels use now. */
  public static CpuIsa active() {
    Kvasir.ensureLoaded();
    return fromCode(KvasirLibrary.kv_cpu_isa_active());
  }

  /**
   * Caps the level CPU kernels may use, for the whole process.
   *
   * @throws KvasirException with {@link Status#UNSUPPORTED} when the CPU lacks {@code isa}
   */
  public static void setMax(CpuIsa isa) {
    Kvasir.ensureLoaded();
    KvasirException.check(KvasirLibrary.kv_cpu_isa_set_max(isa.code));
  }
}
