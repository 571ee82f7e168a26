package io.kvasir.nativeapi;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Loading and the C ABI version check. */
class KvasirTest {
  @Test
  void libraryReportsTheAbiVersionOfTheBindings() {
    assertEquals(4, Kvasir.ABI_VERSION, "bump together with KV_ABI_VERSION in include/kvasir/kvasir.h");
    assertEquals(Kvasir.ABI_VERSION, Kvasir.abiVersion());
    assertEquals(Kvasir.ABI_VERSION, KvasirLibrary.kv_abi_version());
  }

  @Test
  void matchingVersionIsAccepted() {
    assertDoesNotThrow(() -> Kvasir.checkAbiVersion(Kvasir.ABI_VERSION));
  }

  @Test
  void newerLibraryIsRefusedNamingBothVersionsAndTheFix() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> Kvasir.checkAbiVersion(Kvasir.ABI_VERSION + 1));
    String m = e.getMessage();
    assertTrue(m.contains("C ABI version " + (Kvasir.ABI_VERSION + 1)), m);
    assertTrue(m.contains("expect C ABI version " + Kvasir.ABI_VERSION), m);
    assertTrue(m.contains("Java bindings are older"), m);
    assertTrue(m.contains("cmake --build build/native") && m.contains("kvasir-native jar"), m);
  }

  @Test
  void olderLibraryIsRefusedToo() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> Kvasir.checkAbiVersion(0));
    assertTrue(e.getMessage().contains("C ABI version 0"), e.getMessage());
    assertTrue(e.getMessage().contains("native library is older"), e.getMessage());
  }

  @Test
  void buildInfoNamesTheLibrary() {
    String info = Kvasir.buildInfo();
    assertTrue(info.startsWith("kvasir "), info);
    assertTrue(Kvasir.isCompiled(Backend.CPU));
  }

  @Test
  void javaEnumsMirrorTheHeaderValues() {
    // kv_status_to_string is the library's own table: the Java codes must name the same statuses.
    for (Status s : Status.values()) {
      assertEquals(s.cName(), Kvasir.statusName(s.code()));
      assertEquals(s, Status.fromCode(s.code()).orElseThrow());
    }
    assertEquals("KV_STATUS_UNKNOWN", Kvasir.statusName(Status.values().length));
    assertTrue(Status.fromCode(99).isEmpty());
    // Enum values the header fixes; a change there must bump the ABI version and fail here.
    assertEquals(0, Backend.CPU.code());
    assertEquals(1, Backend.CUDA.code());
    assertEquals(0, MemoryTier.DEVICE.code());
    assertEquals(1, MemoryTier.PINNED_HOST.code());
    assertEquals(2, MemoryTier.HOST.code());
    assertEquals(0, DType.F32.code());
    assertEquals(1, DType.BF16.code());
    assertEquals(0, CpuIsa.SCALAR.code());
    assertEquals(1, CpuIsa.AVX2.code());
  }
}
