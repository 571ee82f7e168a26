package io.kvasir.nativeapi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.bytedeco.javacpp.Loader;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Round trips through the bindings on the CPU backend: host access, copies, page copies, structs. */
class BindingsTest {
  private static final Logger LOG = LogManager.getLogger(BindingsTest.class);

  private Stream stream;
  private SplittableRandom rng;

  @BeforeEach
  void open() {
    stream = Stream.cpu();
    long seed = ThreadLocalRandom.current().nextLong();
    LOG.info("seed {}", seed);
    rng = new SplittableRandom(seed);
  }

  @AfterEach
  void close() {
    stream.close();
  }

  private byte[] randomBytes(int n) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) {
      b[i] = (byte) rng.nextInt(256);
    }
    return b;
  }

  @Test
  void hostBufferPutGetEveryType() {
    try (Buffer b = Buffer.host(4096)) {
      assertEquals(4096, b.sizeBytes());
      assertEquals(MemoryTier.HOST, b.tier());
      assertEquals(Backend.CPU, b.backend());
      assertTrue(b.isHostAccessible());
      assertEquals(0, b.address() % 256, "host memory is 256-byte aligned");

      float[] f = {1.5f, -2f, Float.NaN, Float.NEGATIVE_INFINITY, Float.MIN_VALUE};
      b.put(3, f);
      float[] fOut = new float[f.length];
      b.get(3, fOut);
      assertArrayEquals(f, fOut);

      short[] s = {(short) 0x3F80, (short) 0x7FC0, (short) 0x8000};
      b.put(1000, s);
      short[] sOut = new short[3];
      b.get(1000, sOut);
      assertArrayEquals(s, sOut);

      long[] l = {Long.MIN_VALUE, -1, 42};
      b.put(509, l); // the last three longs
      long[] lOut = new long[3];
      b.get(509, lOut);
      assertArrayEquals(l, lOut);

      byte[] bytes = randomBytes(17);
      b.put(4079, bytes);
      byte[] bytesOut = new byte[17];
      b.get(4079, bytesOut);
      assertArrayEquals(bytes, bytesOut);

      // Views into arrays and the same bytes through two types.
      b.put(0, new float[] {9f, 1f, 2f, 9f}, 1, 2);
      float[] two = new float[4];
      b.get(0, two, 2, 2);
      assertArrayEquals(new float[] {0f, 0f, 1f, 2f}, two);
      byte[] raw = new byte[4];
      b.get(0, raw);
      assertEquals(Float.floatToIntBits(1f), java.nio.ByteBuffer.wrap(raw).order(java.nio.ByteOrder.nativeOrder()).getInt());
    }
  }

  @Test
  void hostAccessIsBoundsChecked() {
    try (Buffer b = Buffer.host(64)) {
      assertThrows(IndexOutOfBoundsException.class, () -> b.put(15, new float[2]));
      assertThrows(IndexOutOfBoundsException.class, () -> b.put(-1, new float[1]));
      assertThrows(IndexOutOfBoundsException.class, () -> b.get(8, new long[1]));
      assertThrows(IndexOutOfBoundsException.class, () -> b.put(0, new float[4], 2, 3));
      assertThrows(IndexOutOfBoundsException.class, () -> b.put(Long.MAX_VALUE, new byte[1]));
      b.put(14, new float[2]); // exactly to the end is fine
      b.get(64, new byte[0]);
    }
  }

  @Test
  void memcpyBetweenEveryTierOfTheCpuBackend() {
    int n = 1 << 12;
    byte[] data = randomBytes(n);
    for (MemoryTier from : MemoryTier.values()) {
      for (MemoryTier to : MemoryTier.values()) {
        try (Buffer src = Buffer.allocate(Backend.CPU, 0, from, n);
            Buffer dst = Buffer.allocate(Backend.CPU, 0, to, n + 100)) {
          assertEquals(from, src.tier());
          src.put(0, data);
          stream.memset(dst, 0xEE);
          stream.memcpy(dst, 100, src, 0, n);
          stream.synchronize();
          byte[] out = new byte[n + 100];
          dst.get(0, out);
          byte[] head = new byte[100];
          Arrays.fill(head, (byte) 0xEE);
          assertArrayEquals(head, Arrays.copyOf(out, 100), from + " -> " + to + ": bytes before the offset");
          assertArrayEquals(data, Arrays.copyOfRange(out, 100, n + 100), from + " -> " + to);
        }
      }
    }
  }

  @Test
  void uploadAndDownloadThroughTheStream() {
    try (Buffer b = Buffer.allocate(Backend.CPU, 0, MemoryTier.DEVICE, 1024)) {
      float[] f = {3f, 1f, 4f, 1f, 5f};
      stream.upload(b, 7, f);
      float[] back = new float[5];
      stream.download(b, 7, back);
      assertArrayEquals(f, back);
      long[] l = {1, 2, 3};
      stream.upload(b, 100, l);
      long[] lBack = new long[3];
      stream.download(b, 100, lBack);
      assertArrayEquals(l, lBack);
      assertThrows(IndexOutOfBoundsException.class, () -> stream.upload(b, 255, new float[2]));
    }
  }

  @Test
  void pageGatherAndScatterAreBitExactAndLeaveOtherPagesAlone() {
    int pageBytes = 80; // a multiple of 16: the aligned path
    for (int pb : new int[] {pageBytes, 37}) { // and an odd size: the unaligned path
      int srcCap = 50;
      int dstCap = 30;
      int num = 12;
      byte[] src = randomBytes(srcCap * pb);
      byte[] poison = randomBytes(dstCap * pb);
      long[] gather = distinct(num, srcCap);
      long[] scatter = distinct(num, dstCap);
      try (Buffer s = Buffer.host((long) srcCap * pb); Buffer d = Buffer.host((long) dstCap * pb);
          Buffer gi = Buffer.host(num * 8L); Buffer si = Buffer.host(num * 8L)) {
        s.put(0, src);
        gi.put(0, gather);
        si.put(0, scatter);

        // Gather: dst page i <- src page gather[i].
        d.put(0, poison);
        stream.pageCopy(d, s, pb, gi, null, num);
        byte[] want = poison.clone();
        for (int i = 0; i < num; i++) {
          System.arraycopy(src, (int) gather[i] * pb, want, i * pb, pb);
        }
        assertArrayEquals(want, read(d, dstCap * pb), "gather, page " + pb + " bytes");

        // Scatter: dst page scatter[i] <- src page i.
        d.put(0, poison);
        Ops.pageCopy(stream, d, s, pb, null, si, num);
        want = poison.clone();
        for (int i = 0; i < num; i++) {
          System.arraycopy(src, i * pb, want, (int) scatter[i] * pb, pb);
        }
        assertArrayEquals(want, read(d, dstCap * pb), "scatter, page " + pb + " bytes");

        // Both lists, with regions that start some pages in and index lists read from an offset.
        long[] fromList = new long[12];
        long[] toList = new long[12];
        System.arraycopy(distinct(10, srcCap - 3), 0, fromList, 2, 10);
        System.arraycopy(distinct(10, dstCap - 5), 0, toList, 2, 10);
        gi.put(0, fromList);
        si.put(0, toList);
        d.put(0, poison);
        Ops.pageCopy(stream, d.at(5), s.at(3), pb, gi.at(2), si.at(2), 10);
        want = poison.clone();
        for (int i = 2; i < 12; i++) {
          System.arraycopy(src, (3 + (int) fromList[i]) * pb, want, (5 + (int) toList[i]) * pb, pb);
        }
        assertArrayEquals(want, read(d, dstCap * pb), "offset regions, page " + pb + " bytes");
      }
    }
  }

  @Test
  void zeroPagesCopiesNothing() {
    try (Buffer s = Buffer.host(64); Buffer d = Buffer.host(64)) {
      d.put(0, new long[] {7, 7, 7, 7, 7, 7, 7, 7});
      Ops.pageCopy(stream, d, s, 8, null, null, 0);
      long[] out = new long[8];
      d.get(0, out);
      assertArrayEquals(new long[] {7, 7, 7, 7, 7, 7, 7, 7}, out);
    }
  }

  private static byte[] read(Buffer b, int n) {
    byte[] out = new byte[n];
    b.get(0, out);
    return out;
  }

  private long[] distinct(int count, int bound) {
    return rng.ints(0, bound).distinct().limit(count).asLongStream().toArray();
  }

  @Test
  void devicePropsOfTheCpu() {
    DeviceCount count = Devices.count(Backend.CPU);
    assertEquals(1, count.count());
    assertTrue(count.available());
    DeviceInfo cpu = Devices.props(Backend.CPU, 0);
    assertEquals(Backend.CPU, cpu.backend());
    assertEquals(0, cpu.ordinal());
    assertFalse(cpu.name().isEmpty());
    assertEquals(CpuIsa.active().name().toLowerCase(java.util.Locale.ROOT), cpu.arch());
    assertTrue(cpu.computeUnits() >= 1);
    assertTrue(cpu.totalMemoryBytes() > 0);
    assertEquals(-1, cpu.pciBusId());
    assertEquals(List.of(cpu), Devices.list(Backend.CPU));
  }

  @Test
  void structMembersRoundTrip() {
    // Setters and getters address the same fields: the member layout JavaCPP compiled is the header's.
    try (KvasirLibrary.kv_device_props p = new KvasirLibrary.kv_device_props()) {
      p.backend(1).ordinal(3).total_memory_bytes(-2L).compute_units(132).compute_major(9).compute_minor(0)
          .pci_bus_id(27).l2_cache_bytes(60L << 20).shared_memory_per_block_bytes(232448);
      p.name().putString("NVIDIA Test");
      p.arch().putString("sm_90");
      assertEquals(1, p.backend());
      assertEquals(3, p.ordinal());
      assertEquals(-2L, p.total_memory_bytes(), "uint64_t travels as its bits");
      assertEquals(132, p.compute_units());
      assertEquals(9, p.compute_major());
      assertEquals(27, p.pci_bus_id());
      assertEquals(60L << 20, p.l2_cache_bytes());
      assertEquals(232448, p.shared_memory_per_block_bytes());
      assertEquals("NVIDIA Test", p.name().getString());
      assertEquals("sm_90", p.arch().getString());
      // 2 int32, char[128], char[32], uint64, 4 int32, 2 uint64: 208 bytes with natural alignment.
      assertEquals(208, Loader.sizeof(KvasirLibrary.kv_device_props.class));
      assertEquals(5 * 8 + 8 + 8, Loader.sizeof(KvasirLibrary.kv_roofline.class));
    }
    try (KvasirLibrary.kv_roofline r = new KvasirLibrary.kv_roofline()) {
      r.read_bytes_per_s(1.5).copy_bytes_per_s(2.5).h2d_bytes_per_s(3.5).d2h_bytes_per_s(4.5)
          .gemm_bf16_flops_per_s(5.5).buffer_bytes(1L << 33).repetitions(7);
      assertEquals(1.5, r.read_bytes_per_s());
      assertEquals(2.5, r.copy_bytes_per_s());
      assertEquals(3.5, r.h2d_bytes_per_s());
      assertEquals(4.5, r.d2h_bytes_per_s());
      assertEquals(5.5, r.gemm_bf16_flops_per_s());
      assertEquals(1L << 33, r.buffer_bytes());
      assertEquals(7, r.repetitions());
    }
  }

  @Test
  void eventsTimeCpuWork() {
    try (Event start = Event.create(stream); Event end = Event.create(stream); Buffer b = Buffer.host(1 << 22)) {
      start.record(stream);
      stream.memset(b, 1);
      end.record(stream);
      end.synchronize();
      stream.waitEvent(end);
      float ms = Event.elapsedMs(start, end);
      assertTrue(ms >= 0 && ms < 60_000, "elapsed " + ms);
      assertEquals(Backend.CPU, start.backend());
    }
  }

  @Test
  void rooflineProbeMeasuresTheCpu() {
    Roofline r = Roofline.probe(stream, 1 << 20, 3);
    assertEquals(Backend.CPU, r.backend());
    assertTrue(r.readBytesPerS() > 0, r.toString());
    assertTrue(r.copyBytesPerS() > 0, r.toString());
    assertEquals(0.0, r.h2dBytesPerS(), "no host transfers on the CPU");
    assertEquals(3, r.repetitions());
    assertEquals(1 << 20, r.bufferBytes());
  }

  @Test
  void cpuNeedsNoAttentionWorkspace() {
    assertEquals(0, Ops.attentionDecodeWorkspaceBytes(stream, new AttentionShape(4, 32, 8, 128, 100_000)));
  }

  @Test
  void cpuIsaCanBeCappedAndRestored() {
    CpuIsa before = CpuIsa.active();
    try {
      CpuIsa.setMax(CpuIsa.SCALAR);
      assertEquals(CpuIsa.SCALAR, CpuIsa.active());
      assertEquals("scalar", Devices.props(Backend.CPU, 0).arch());
    } finally {
      CpuIsa.setMax(before);
    }
    assertEquals(before, CpuIsa.active());
  }
}
