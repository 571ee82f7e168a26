package io.kvasir.nativeapi;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

/**
 * Bulk copies between Java arrays and host memory at a raw address, through JavaCPP's typed
 * pointers (one JNI copy per call, long offsets, no ByteBuffer 2 GiB limit). Callers have already
 * checked bounds and that the address is host memory.
 */
final class HostMemory {
  private HostMemory() {}

  /** A Pointer at an address JavaCPP does not own: it never frees it. */
  private static final class At extends Pointer {
    At(long address) {
      this.address = address;
    }
  }

  static void put(long address, float[] src, int from, int length) {
    new FloatPointer(new At(address)).put(src, from, length);
  }

  static void get(long address, float[] dst, int from, int length) {
    new FloatPointer(new At(address)).get(dst, from, length);
  }

  static void put(long address, short[] src, int from, int length) {
    new ShortPointer(new At(address)).put(src, from, length);
  }

  static void get(long address, short[] dst, int from, int length) {
    new ShortPointer(new At(address)).get(dst, from, length);
  }

  static void put(long address, long[] src, int from, int length) {
    new LongPointer(new At(address)).put(src, from, length);
  }

  static void get(long address, long[] dst, int from, int length) {
    new LongPointer(new At(address)).get(dst, from, length);
  }

  static void put(long address, byte[] src, int from, int length) {
    new BytePointer(new At(address)).put(src, from, length);
  }

  static void get(long address, byte[] dst, int from, int length) {
    new BytePointer(new At(address)).get(dst, from, length);
  }
}
