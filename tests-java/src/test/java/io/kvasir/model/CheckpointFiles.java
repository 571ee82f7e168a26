package io.kvasir.model;

import io.kvasir.ops.Bf16;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Test helpers that derive damaged or altered model directories from a good one. */
public final class CheckpointFiles {
  private CheckpointFiles() {}

  /** A tensor to write into a rewritten checkpoint: name, shape and values. */
  public record Entry(String name, long[] shape, float[] values) {}

  /** A tensor's values as floats (exact: every bf16 / f16 value is a float). */
  public static float[] floats(TensorView t) {
    ByteBuffer b = t.data();
    float[] out = new float[Math.toIntExact(t.elementCount())];
    for (int i = 0; i < out.length; i++) {
      switch (t.dtype()) {
        case F32:
          out[i] = b.getFloat(4 * i);
          break;
        case BF16:
          out[i] = Bf16.toFloat(b.getShort(2 * i));
          break;
        default:
          out[i] = Float16.toFloat(b.getShort(2 * i));
      }
    }
    return out;
  }

  /** Every tensor of a checkpoint, in file order, decoded to floats. */
  public static List<Entry> entries(Path modelDir) throws IOException {
    List<Entry> out = new ArrayList<>();
    try (Checkpoint c = Checkpoint.open(modelDir)) {
      for (String name : c.names()) {
        TensorView t = c.tensor(name);
        out.add(new Entry(name, t.shape(), floats(t)));
      }
    }
    return out;
  }

  /**
   * Writes {@code entries} as the single {@code model.safetensors} of {@code dst} (in f32, so
   * values pass exactly), with {@code dst}'s config.json copied from {@code src} unless
   * {@code configJson} is given.
   */
  public static Path write(Path src, Path dst, List<Entry> entries, String configJson) throws IOException {
    Files.createDirectories(dst);
    if (configJson == null) {
      Files.copy(src.resolve("config.json"), dst.resolve("config.json"), StandardCopyOption.REPLACE_EXISTING);
    } else {
      Files.writeString(dst.resolve("config.json"), configJson);
    }
    List<SafetensorsWriter.Tensor> tensors = new ArrayList<>();
    for (Entry e : entries) {
      tensors.add(new SafetensorsWriter.Tensor(e.name(), TensorDType.F32, e.shape(),
          SafetensorsWriter.FloatSource.of(e.values())));
    }
    SafetensorsWriter.write(dst.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
    return dst;
  }
}
