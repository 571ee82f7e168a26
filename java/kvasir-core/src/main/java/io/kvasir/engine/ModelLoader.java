package io.kvasir.engine;

import io.kvasir.model.Checkpoint;
import io.kvasir.model.ModelConfig;
import io.kvasir.model.TensorDType;
import io.kvasir.model.TensorView;
import io.kvasir.model.Weight;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Model;
import io.kvasir.nativeapi.ModelShape;
import io.kvasir.nativeapi.WeightKind;
import java.io.IOException;
import java.nio.file.Path;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/** Puts a Hugging Face checkpoint on a device: config to shape, every tensor copied once from its mapping. */
final class ModelLoader {
  private static final Logger LOG = LogManager.getLogger(ModelLoader.class);

  private ModelLoader() {}

  /** The native shape of a checkpoint config, stored in {@code dtype}, limited to {@code maxContext} positions. */
  static ModelShape shapeOf(ModelConfig c, DType dtype, int maxContext) {
    var rope = c.ropeScaling();
    return new ModelShape(c.vocabSize(), c.hiddenSize(), c.intermediateSize(), c.numHiddenLayers(),
        c.numAttentionHeads(), c.numKeyValueHeads(), c.headDim(), Math.min(maxContext, c.maxPositionEmbeddings()),
        (float) c.rmsNormEps(), (float) c.ropeTheta(), rope == null ? "default" : "llama3",
        rope == null ? 1f : (float) rope.factor(), rope == null ? 1f : (float) rope.lowFreqFactor(),
        rope == null ? 2f : (float) rope.highFreqFactor(), rope == null ? 0 : rope.originalMaxPositionEmbeddings(),
        c.qkNorm(), c.qkvBias(), c.tieWordEmbeddings(), dtype);
  }

  /** The storage dtype a checkpoint suggests when the user names none: bf16 unless the checkpoint is fp32. */
  static DType defaultDtype(ModelConfig c) {
    return c.torchDtype() == TensorDType.F32 ? DType.F32 : DType.BF16;
  }

  static Model load(Path dir, Backend backend, int device, DType dtype, int maxContext) throws IOException {
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      ModelConfig c = ckpt.config();
      ModelShape shape = shapeOf(c, dtype, maxContext);
      Model model = Model.create(backend, device, shape);
      try {
        long start = System.nanoTime();
        for (Weight w : Weight.values()) {
          if (!w.presentIn(c)) {
            continue;
          }
          for (int layer = 0; layer < (w.perLayer() ? c.numHiddenLayers() : 1); ++layer) {
            TensorView t = w.perLayer() ? ckpt.tensor(w, layer) : ckpt.tensor(w);
            model.setWeight(WeightKind.valueOf(w.name()), w.perLayer() ? layer : -1, dtypeOf(t), t.address(),
                t.elementCount());
          }
          LOG.debug("loaded {}", w);
        }
        model.checkComplete();
        LOG.info("loaded {} ({} layers, {} MiB of weights as {}) in {} ms", dir, c.numHiddenLayers(),
            model.weightBytes() >> 20, dtype, (System.nanoTime() - start) / 1_000_000);
        return model;
      } catch (RuntimeException | Error e) {
        model.close();
        throw e;
      }
    }
  }

  private static DType dtypeOf(TensorView t) {
    return switch (t.dtype()) {
      case BF16 -> DType.BF16;
      case F16 -> DType.F16;
      case F32 -> DType.F32;
    };
  }
}
