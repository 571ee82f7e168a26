package io.kvasir.nativeapi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The bindings on a CUDA device; skipped where the library reports none. */
class CudaBackendTest {
  private static final Logger LOG = LogManager.getLogger(CudaBackendTest.class);

  @BeforeEach
  void requireCuda() {
    DeviceCount count = Devices.count(Backend.CUDA);
    assumeTrue(count.available(), () -> "no CUDA device: " + count.reason());
  }

  @Test
  void devicePropsNameAGpu() {
    DeviceInfo d = Devices.props(Backend.CUDA, 0);
    assertTrue(d.arch().startsWith("sm_"), d.arch());
    assertTrue(d.computeMajor() >= 8, d.toString());
    assertTrue(d.totalMemoryBytes() > 0 && d.computeUnits() > 0, d.toString());
  }

  @Test
  void everyTierRoundTripsAndCountersReturn() {
    long seed = ThreadLocalRandom.current().nextLong();
    LOG.info("seed {}", seed);
    byte[] data = new byte[1 << 20];
    new SplittableRandom(seed).nextBytes(data);
    Map<MemoryTier, MemoryStats> start = Memory.liveAll();
    try (Stream s = Stream.create(Backend.CUDA, 0)) {
      for (MemoryTier tier : MemoryTier.values()) {
        try (Buffer b = Buffer.allocate(Backend.CUDA, 0, tier, data.length)) {
          assertEquals(tier, b.tier());
          s.upload(b, 0, data);
          byte[] back = new byte[data.length];
          s.download(b, 0, back);
          assertArrayEquals(data, back, tier.toString());
        }
      }
      try (Buffer dev = Buffer.allocate(Backend.CUDA, 0, MemoryTier.DEVICE, 4096)) {
        s.memset(dev, 0x3C);
        byte[] back = new byte[4096];
        s.download(dev, 0, back);
        byte[] want = new byte[4096];
        Arrays.fill(want, (byte) 0x3C);
        assertArrayEquals(want, back);
      }
    }
    assertEquals(start, Memory.liveAll(), "streams' internal records are counted and freed too");
  }

  @Test
  void badPageIndexIsReportedBySynchronize() {
    try (Stream s = Stream.create(Backend.CUDA, 0);
        Buffer src = Buffer.allocate(Backend.CUDA, 0, MemoryTier.DEVICE, 8 * 64);
        Buffer dst = Buffer.allocate(Backend.CUDA, 0, MemoryTier.DEVICE, 8 * 64);
        Buffer idx = Buffer.allocate(Backend.CUDA, 0, MemoryTier.DEVICE, 2 * 8)) {
      s.upload(idx, 0, new long[] {1, 99});
      KvasirException e = assertThrows(KvasirException.class, () -> {
        Ops.pageCopy(s, dst, src, 64, idx, null, 2);
        s.synchronize();
      });
      assertTrue(e.nativeMessage().contains("src_pages"), e.getMessage());
      s.synchronize(); // the error was reported once; the stream stays usable
    }
  }

  @Test
  void attentionWorkspaceIsQueried() {
    try (Stream s = Stream.create(Backend.CUDA, 0)) {
      long bytes = Ops.attentionDecodeWorkspaceBytes(s, new AttentionShape(1, 32, 8, 128, 32768));
      assertTrue(bytes > 0, "a long single sequence splits on the GPU");
    }
  }

  @Test
  void plainHostMemoryIsRefusedForKernels() {
    try (Stream s = Stream.create(Backend.CUDA, 0); Buffer host = Buffer.host(1 << 16);
        Buffer dev = Buffer.allocate(Backend.CUDA, 0, MemoryTier.DEVICE, 1 << 16)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> Ops.mergeState(s, DType.F32, host, dev, dev, dev, dev, dev, 4, 64));
      assertTrue(e.getMessage().startsWith("o_a is Buffer(CPU:0 HOST"), e.getMessage());
    }
  }
}
