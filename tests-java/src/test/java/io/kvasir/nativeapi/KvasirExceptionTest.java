package io.kvasir.nativeapi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Every non-zero kv_status becomes a KvasirException carrying the status and the library's
 * message, which names the call and the argument; Java-side checks name the argument too.
 */
class KvasirExceptionTest {
  private Stream stream;

  @BeforeEach
  void open() {
    stream = Stream.cpu();
  }

  @AfterEach
  void close() {
    stream.close();
  }

  private static KvasirException expect(Status status, String mentions, Executable call) {
    KvasirException e = assertThrows(KvasirException.class, call);
    assertEquals(status, e.status(), e.getMessage());
    assertEquals(status.code(), e.code());
    assertTrue(e.nativeMessage().contains(mentions), e.nativeMessage());
    assertTrue(e.getMessage().startsWith(status.cName() + ": "), e.getMessage());
    return e;
  }

  @Test
  void zeroSizedBufferNamesSize() {
    KvasirException e = expect(Status.INVALID_ARGUMENT, "size_bytes", () -> Buffer.host(0));
    assertTrue(e.nativeMessage().startsWith("kv_buffer_init: "), e.nativeMessage());
  }

  @Test
  void missingCpuDeviceNamesDevice() {
    expect(Status.INVALID_ARGUMENT, "device=1", () -> Buffer.allocate(Backend.CPU, 1, MemoryTier.HOST, 64));
    expect(Status.INVALID_ARGUMENT, "device=3", () -> Stream.create(Backend.CPU, 3));
  }

  @Test
  void nullHandlesAreRefusedByTheLibrary() {
    expect(Status.INVALID_ARGUMENT, "stream is NULL",
        () -> KvasirException.check(KvasirLibrary.kv_stream_synchronize(null)));
    expect(Status.INVALID_ARGUMENT, "event is NULL",
        () -> KvasirException.check(KvasirLibrary.kv_event_synchronize(null)));
    expect(Status.INVALID_ARGUMENT, "stream is NULL",
        () -> KvasirException.check(KvasirLibrary.kv_merge_state_async(null, 0, 0, 0, 0, 0, 0, 0, 1, 64)));
    expect(Status.INVALID_ARGUMENT, "out_ms is NULL", () -> {
      try (Event a = Event.create(stream); Event b = Event.create(stream)) {
        a.record(stream);
        b.record(stream);
        KvasirException.check(KvasirLibrary.kv_event_elapsed_ms(a.nativeHandle(), b.nativeHandle(), null));
      }
    });
    // NULL-safe accessors and free, as the header promises.
    KvasirLibrary.kv_buffer_free(null);
    KvasirLibrary.kv_stream_free(null);
    KvasirLibrary.kv_event_free(null);
    assertEquals(0, KvasirLibrary.kv_buffer_size_bytes(null));
    assertEquals(0, KvasirLibrary.kv_buffer_data(null));
  }

  @Test
  void nullTensorPointerIsRefusedByTheLibrary() {
    try (Buffer b = Buffer.host(4096)) {
      long p = b.address();
      expect(Status.INVALID_ARGUMENT, "o_b is NULL", () -> KvasirException.check(
          KvasirLibrary.kv_merge_state_async(stream.nativeHandle(), 0, p, p, 0, p, p, p, 4, 64)));
    }
  }

  @Test
  void closedHandlesThrowIllegalStateNamingTheClass() {
    Buffer b = Buffer.host(256);
    b.close();
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> Ops.mergeState(stream, DType.F32, b, b, b, b, b, b, 1, 4));
    assertTrue(e.getMessage().contains("Buffer is closed"), e.getMessage());
    Stream s = Stream.cpu();
    s.close();
    e = assertThrows(IllegalStateException.class, s::synchronize);
    assertTrue(e.getMessage().contains("Stream is closed"), e.getMessage());
  }

  @Test
  void badDtypeNamesDtype() {
    try (Buffer b = Buffer.host(4096)) {
      long p = b.address();
      expect(Status.INVALID_ARGUMENT, "dtype=7", () -> KvasirException.check(
          KvasirLibrary.kv_merge_state_async(stream.nativeHandle(), 7, p, p, p, p, p, p, 4, 64)));
      expect(Status.INVALID_ARGUMENT, "dtype=2", () -> KvasirException.check(KvasirLibrary.kv_attention_decode_async(
          stream.nativeHandle(), 2, p, p, p, p, p, 1, 1, 1, 64, 1, 0.125f, 0, 0)));
    }
  }

  @Test
  void badShapesNameTheDimension() {
    try (Buffer big = Buffer.host(1 << 20)) {
      expect(Status.UNSUPPORTED, "head_dim=96", () -> Ops.attentionDecode(stream, DType.F32,
          new AttentionShape(1, 2, 1, 96, 8), 0.1f, big, big, big, big, big, null));
      expect(Status.INVALID_ARGUMENT, "num_q_heads=6", () -> Ops.attentionDecode(stream, DType.F32,
          new AttentionShape(1, 6, 4, 64, 8), 0.1f, big, big, big, big, big, null));
      expect(Status.INVALID_ARGUMENT, "num_kv_heads=0", () -> Ops.attentionDecode(stream, DType.F32,
          new AttentionShape(1, 4, 0, 64, 8), 0.1f, big, big, big, big, big, null));
      expect(Status.INVALID_ARGUMENT, "sm_scale", () -> Ops.attentionDecode(stream, DType.F32,
          new AttentionShape(1, 4, 2, 64, 8), Float.NaN, big, big, big, big, big, null));
      expect(Status.INVALID_ARGUMENT, "head_dim=0",
          () -> Ops.mergeState(stream, DType.F32, big, big, big, big, big, big, 3, 0));
      expect(Status.INVALID_ARGUMENT, "num_states=0",
          () -> Ops.mergeStates(stream, DType.BF16, big, big, 0, big, null, 3, 64));
    }
  }

  @Test
  void javaChecksNameTheArgumentBeforeNativeCode() {
    try (Buffer small = Buffer.host(64); Buffer big = Buffer.host(1 << 16)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ops.attentionDecode(stream,
          DType.F32, new AttentionShape(1, 2, 1, 64, 8), 0.1f, small, big, big, big, big, null));
      assertTrue(e.getMessage().startsWith("q needs 128 elements"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> Ops.mergeState(stream, DType.BF16, big, big, big.at(32700),
          big, big, big, 4, 64));
      assertTrue(e.getMessage().startsWith("o_b needs 256 elements of 2 bytes from element 32700"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> Ops.mergeState(stream, DType.F32, big, big, big, big, big,
          null, 4, 64));
      assertTrue(e.getMessage().startsWith("lse_out is null"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> Ops.mergeState(stream, DType.F32, big, big, big, big, big,
          big, -1, 64));
      assertTrue(e.getMessage().startsWith("rows=-1"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> stream.memcpy(small, 0, big, 0, 65));
      assertTrue(e.getMessage().startsWith("dst range"), e.getMessage());
      assertThrows(IllegalArgumentException.class, () -> new AttentionShape(1, 2, 1, 64, -5));
    }
  }

  @Test
  void pageIndexOutOfRangeFailsBeforeAnyByteMoves() {
    int pageBytes = 64;
    try (Buffer src = Buffer.host(10 * pageBytes); Buffer dst = Buffer.host(4 * pageBytes);
        Buffer indices = Buffer.host(3 * Long.BYTES)) {
      byte[] before = new byte[4 * pageBytes];
      Arrays.fill(before, (byte) 7);
      dst.put(0, before);
      indices.put(0, new long[] {1, 2, 10});
      KvasirException e = expect(Status.INVALID_ARGUMENT, "src_pages[2] = 10",
          () -> Ops.pageCopy(stream, dst, src, pageBytes, indices, null, 3));
      assertTrue(e.nativeMessage().contains("src_capacity_pages = 10"), e.nativeMessage());
      byte[] after = new byte[before.length];
      dst.get(0, after);
      assertArrayEquals(before, after, "the CPU validates every index before copying");

      indices.put(0, new long[] {0, -1, 2});
      expect(Status.INVALID_ARGUMENT, "dst_pages[1] = -1",
          () -> Ops.pageCopy(stream, dst, src, pageBytes, null, indices, 3));
      expect(Status.INVALID_ARGUMENT, "num_pages=5 > dst_capacity_pages=4",
          () -> Ops.pageCopy(stream, dst, src, pageBytes, null, null, 5));
    }
  }

  @Test
  void otherLibraryRulesAreReported() {
    try (Buffer b = Buffer.host(64)) {
      expect(Status.INVALID_ARGUMENT, "value=300", () -> stream.memset(b, 300));
    }
    expect(Status.INVALID_ARGUMENT, "isa=5", () -> KvasirException.check(KvasirLibrary.kv_cpu_isa_set_max(5)));
    try (Event e = Event.create(stream)) {
      expect(Status.INVALID_ARGUMENT, "never recorded", e::synchronize);
      expect(Status.INVALID_ARGUMENT, "both events must be recorded", () -> Event.elapsedMs(e, e));
    }
    expect(Status.INVALID_ARGUMENT, "repetitions=-1", () -> Roofline.probe(stream, 0, -1));
  }

  @Test
  void missingCudaDeviceIsNoDevice() {
    assumeFalse(Devices.count(Backend.CUDA).available(), "a CUDA device is present");
    expect(Status.NO_DEVICE, "CUDA", () -> Stream.create(Backend.CUDA, 0));
    expect(Status.NO_DEVICE, "CUDA", () -> Buffer.allocate(Backend.CUDA, 0, MemoryTier.DEVICE, 64));
  }

  @Test
  void messagesDoNotGoStale() {
    assertThrows(KvasirException.class, () -> Buffer.host(0));
    // The failing call's message was consumed; a later failure reports its own.
    assertEquals("", KvasirLibrary.kv_last_error());
    expect(Status.INVALID_ARGUMENT, "device=2", () -> Stream.create(Backend.CPU, 2));
  }

  @Test
  void unknownStatusCodesStillThrow() {
    KvasirException e = new KvasirException(42, "KV_STATUS_UNKNOWN", "from a newer library");
    assertEquals(Status.INTERNAL, e.status());
    assertEquals(42, e.code());
    assertEquals("KV_STATUS_UNKNOWN: from a newer library", e.getMessage());
  }
}
