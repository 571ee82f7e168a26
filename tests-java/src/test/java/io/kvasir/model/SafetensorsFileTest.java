package io.kvasir.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.ops.Bf16;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ReadOnlyBufferException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading safetensors files: exact bytes back, and a clear error for each kind of damage. */
class SafetensorsFileTest {
  @TempDir
  Path dir;

  private static final float[] VALUES = {0f, -0f, 1f, -2.5f, 3.14159f, 1e-3f, -65504f, 1e-7f, 70000f,
      Float.MIN_NORMAL, 0x1.fffffep-1f, -1e30f};

  /** Writes a file from a header string and a data section, with the true header length. */
  private Path raw(String name, String header, byte[] data) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    return raw(name, h.length, h, data);
  }

  private Path raw(String name, long headerLength, byte[] header, byte[] data) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(headerLength).put(header).put(data);
    Path p = dir.resolve(name);
    Files.write(p, b.array());
    return p;
  }

  private CheckpointException refused(Path file, String... fragments) {
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
    String m = e.getMessage();
    assertTrue(m.contains(file.toString()), "names the file: " + m);
    for (String f : fragments) {
      assertTrue(m.contains(f), "mentions '" + f + "': " + m);
    }
    return e;
  }

  private static byte[] expectedBytes(TensorDType dtype, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      switch (dtype) {
        case F32:
          b.putInt(Float.floatToRawIntBits(v));
          break;
        case BF16:
          b.putShort(Bf16.fromFloat(v));
          break;
        default:
          b.putShort(Float16.fromFloat(v));
      }
    }
    return b.array();
  }

  private static byte[] bytes(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.duplicate().get(out);
    return out;
  }

  private Path writeAllDtypes() throws IOException {
    Path p = dir.resolve("all.safetensors");
    SafetensorsWriter.write(p, List.of(
        new SafetensorsWriter.Tensor("a.bf16", TensorDType.BF16, new long[] {3, 4}, SafetensorsWriter.FloatSource.of(VALUES)),
        new SafetensorsWriter.Tensor("b.f16", TensorDType.F16, new long[] {12}, SafetensorsWriter.FloatSource.of(VALUES)),
        new SafetensorsWriter.Tensor("c.f32", TensorDType.F32, new long[] {2, 3, 2}, SafetensorsWriter.FloatSource.of(VALUES)),
        new SafetensorsWriter.Tensor("d.scalar", TensorDType.F32, new long[] {}, SafetensorsWriter.FloatSource.of(new float[] {7f})),
        new SafetensorsWriter.Tensor("e.empty", TensorDType.BF16, new long[] {0, 5}, SafetensorsWriter.FloatSource.of(new float[0]))),
        Map.of("format", "pt"));
    return p;
  }

  @Test
  void roundTripIsBitExactForEveryDtype() throws IOException {
    Path p = writeAllDtypes();
    byte[] file = Files.readAllBytes(p);
    long headerLength = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    assertEquals(0, (8 + headerLength) % 8, "header padded so the data starts 8-aligned");
    try (SafetensorsFile f = SafetensorsFile.open(p)) {
      assertEquals(List.of("a.bf16", "b.f16", "c.f32", "d.scalar", "e.empty"), List.copyOf(f.names()));
      assertEquals(Map.of("format", "pt"), f.metadata());
      assertEquals(1, f.mappingCount());
      String[] names = {"a.bf16", "b.f16", "c.f32"};
      TensorDType[] types = {TensorDType.BF16, TensorDType.F16, TensorDType.F32};
      for (int i = 0; i < names.length; i++) {
        TensorView t = f.tensor(names[i]);
        assertEquals(types[i], t.dtype());
        assertEquals(12, t.elementCount());
        byte[] expected = expectedBytes(types[i], VALUES);
        assertArrayEquals(expected, bytes(t.data()), names[i]);
        // fileOffset points at the same bytes in the file itself.
        assertArrayEquals(expected, Arrays.copyOfRange(file, (int) t.fileOffset(), (int) t.fileOffset() + expected.length));
        assertEquals(ByteOrder.LITTLE_ENDIAN, t.data().order());
        assertTrue(t.data().isReadOnly());
        assertThrows(ReadOnlyBufferException.class, () -> t.data().put((byte) 1));
      }
      assertArrayEquals(new long[] {2, 3, 2}, f.tensor("c.f32").shape());
      assertEquals(7f, f.tensor("d.scalar").data().getFloat(0));
      assertEquals(0, f.tensor("d.scalar").rank());
      assertEquals(0, f.tensor("e.empty").byteSize());
      CheckpointException missing = assertThrows(CheckpointException.class, () -> f.tensor("nope"));
      assertTrue(missing.getMessage().contains("nope") && missing.getMessage().contains(p.toString()));
    }
  }

  @Test
  void nativeAddressesPointAtTheMappedBytes() throws IOException {
    Path p = writeAllDtypes();
    try (SafetensorsFile f = SafetensorsFile.open(p)) {
      TensorView a = f.tensor("a.bf16");
      TensorView c = f.tensor("c.f32");
      assertEquals(c.fileOffset() - a.fileOffset(), c.address() - a.address(), "one mapping, file layout kept");
      long tensorAddress = c.address();
      Pointer at = new Pointer() {
        {
          address = tensorAddress; // Pointer's protected field: a borrowed address, never freed
        }
      };
      byte[] read = new byte[(int) c.byteSize()];
      new BytePointer(at).get(read, 0, read.length);
      assertArrayEquals(bytes(c.data()), read);
    }
  }

  @Test
  void severalMappingsHoldWholeTensors() throws IOException {
    Path p = writeAllDtypes();
    try (SafetensorsFile one = SafetensorsFile.open(p); SafetensorsFile many = SafetensorsFile.open(p, 48)) {
      assertTrue(many.mappingCount() >= 2, "48-byte windows split the 24 + 24 + 48 + 4 data bytes");
      for (String name : one.names()) {
        assertArrayEquals(bytes(one.tensor(name).data()), bytes(many.tensor(name).data()), name);
      }
    }
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(p, 40));
    assertTrue(e.getMessage().contains("c.f32") && e.getMessage().contains("48 bytes"), e.getMessage());
  }

  @Test
  void closeDropsTheTensors() throws IOException {
    SafetensorsFile f = SafetensorsFile.open(writeAllDtypes());
    TensorView kept = f.tensor("c.f32");
    f.close();
    assertThrows(IllegalStateException.class, () -> f.tensor("c.f32"));
    assertEquals(VALUES[0], kept.data().getFloat(0), "a view taken before close stays valid");
  }

  @Test
  void truncatedFile() throws IOException {
    Path p = dir.resolve("short.safetensors");
    Files.write(p, new byte[] {1, 2, 3});
    refused(p, "truncated", "3 bytes");
    Path empty = dir.resolve("empty.safetensors");
    Files.write(empty, new byte[0]);
    refused(empty, "truncated");
    // A complete file cut short inside the data: the last tensor's range runs past the end.
    byte[] full = Files.readAllBytes(writeAllDtypes());
    Path cut = dir.resolve("cut.safetensors");
    Files.write(cut, Arrays.copyOf(full, full.length - 10));
    refused(cut, "\"c.f32\"", "truncated", "data_offsets");
  }

  @Test
  void headerLengthPastEndOfFile() throws IOException {
    byte[] header = "{}".getBytes(StandardCharsets.UTF_8);
    refused(raw("long.safetensors", 1000, header, new byte[0]), "header length 1000", "past the end");
    refused(raw("huge.safetensors", -1L, header, new byte[0]), "header length 18446744073709551615");
  }

  @Test
  void offsetsBeyondTheData() throws IOException {
    refused(raw("beyond.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
        new byte[16]), "\"w\"", "[8, 24]", "16 bytes");
  }

  @Test
  void unsupportedDtypeIsNamed() throws IOException {
    refused(raw("i64.safetensors", "{\"position_ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
        new byte[16]), "\"position_ids\"", "I64", "BF16, F16, F32");
    refused(raw("f8.safetensors", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}",
        new byte[2]), "\"w\"", "F8_E4M3");
  }

  @Test
  void shapeAndOffsetsMustAgree() throws IOException {
    refused(raw("mismatch.safetensors", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,16]}}",
        new byte[24]), "\"w\"", "[3, 4]", "24 bytes", "[0, 16]");
    refused(raw("backwards.safetensors", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[8,0]}}",
        new byte[8]), "\"w\"", "[8, 0]");
    refused(raw("negative.safetensors", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[-2],\"data_offsets\":[0,4]}}",
        new byte[8]), "\"w\"", "shape");
    refused(raw("overflow.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
        + "\"data_offsets\":[0,4]}}", new byte[8]), "\"w\"", "overflows");
    refused(raw("noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", new byte[4]),
        "\"w\"", "shape");
  }

  @Test
  void overlappingRanges() throws IOException {
    refused(raw("overlap.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", new byte[24]),
        "\"a\" [0, 16)", "\"b\" [12, 20)", "overlap");
    // An empty tensor owns no bytes, wherever it points.
    Path ok = raw("empty-inside.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        + "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}", new byte[16]);
    try (SafetensorsFile f = SafetensorsFile.open(ok)) {
      assertEquals(2, f.names().size());
    }
  }

  @Test
  void malformedHeaders() throws IOException {
    refused(raw("notjson.safetensors", "{\"a\": [", new byte[0]), "not valid JSON");
    refused(raw("array.safetensors", "[1,2]", new byte[0]), "JSON object");
    refused(raw("dup.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        + "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", new byte[0]), "not valid JSON", "a");
    refused(raw("binary.safetensors", 4, new byte[] {(byte) 0xff, (byte) 0xfe, 0, 1}, new byte[0]), "UTF-8");
    refused(raw("entry.safetensors", "{\"w\":[1,2]}", new byte[0]), "\"w\"", "dtype, shape and data_offsets");
    // __metadata__ is ignored whatever it holds; trailing spaces (padding) are fine.
    Path ok = raw("meta.safetensors", "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"y\"}}     ", new byte[0]);
    try (SafetensorsFile f = SafetensorsFile.open(ok)) {
      assertTrue(f.names().isEmpty());
      assertEquals("y", f.metadata().get("x"));
    }
    CheckpointException none = assertThrows(CheckpointException.class,
        () -> SafetensorsFile.open(dir.resolve("absent.safetensors")));
    assertTrue(none.getMessage().contains("absent.safetensors") && none.getMessage().contains("no such file"));
    assertFalse(Files.exists(dir.resolve("absent.safetensors")));
  }
}
