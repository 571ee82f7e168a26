package io.kvasir.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Writes NumPy {@code .npy} files (format 1.0), so logits can be compared with numpy/torch. */
final class Npy {
  private Npy() {}

  /** A little-endian float32 vector of shape {@code (n,)}. */
  static void writeFloat32(Path file, float[] values) throws IOException {
    String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + values.length + ",), }";
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
    // 64 bytes and ended by a newline.
    int unpadded = 10 + dict.length() + 1;
    int padding = (64 - unpadded % 64) % 64;
    String header = dict + " ".repeat(padding) + "\n";
    ByteBuffer data = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    data.asFloatBuffer().put(values);
    try (OutputStream out = Files.newOutputStream(file)) {
      out.write(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0});
      out.write(header.length() & 0xff);
      out.write(header.length() >> 8);
      out.write(header.getBytes(StandardCharsets.US_ASCII));
      out.write(data.array());
    }
  }
}
