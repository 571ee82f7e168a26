package io.kvasir.perf;

import io.kvasir.engine.StepTrace;
import io.kvasir.nativeapi.ModelShape;
import java.util.Objects;

/**
 * The least a model step must move and compute, for rooflines. A step reads every weight matrix
 * once (an untied embedding table only by the rows it looks up, so not counted; a tied one is
 * the LM head and is) and, under full attention, the K and V of every sequence's context; it
 * computes two FLOPs per weight per token (the LM head only for rows that sample) and four per
 * (query, key) pair per query head and head dimension in attention. KV writes, norms and
 * activations are left out: small next to these.
 *
 * @param weightBytes the model's weight bytes as loaded (embedding and LM head included)
 */
public record StepCost(ModelShape shape, long weightBytes) {
  public StepCost {
    Objects.requireNonNull(shape, "shape");
  }

  /** Weight bytes one step reads. */
  public long stepWeightBytes() {
    long embedBytes = (long) shape.vocabSize() * shape.hiddenSize() * shape.weightDtype().byteSize();
    return weightBytes - (shape.tieWordEmbeddings() ? 0 : embedBytes);
  }

  /** Bytes one step reads when its attention reads {@code kvTokens} tokens of K and V in all. */
  public double bytes(double kvTokens) {
    return stepWeightBytes() + kvTokens * shape.kvBytesPerToken();
  }

  /** Bytes the step read at least (full attention). */
  public double bytes(StepTrace step) {
    return bytes(step.kvReadTokens());
  }

  /** Projection and MLP weights applied to every token (all layers; no embedding, no LM head). */
  public long matmulParamsPerToken() {
    long h = shape.hiddenSize();
    long q = (long) shape.numQHeads() * shape.headDim();
    long kv = (long) shape.numKvHeads() * shape.headDim();
    return shape.numLayers() * (h * q + 2 * h * kv + q * h + 3 * h * shape.intermediateSize());
  }

  /** FLOPs of the step's matrix products and (full) attention. */
  public double flops(StepTrace step) {
    double attention = 4.0 * shape.numLayers() * shape.numQHeads() * shape.headDim() * step.attendedPairs();
    return 2.0 * matmulParamsPerToken() * step.tokens()
        + 2.0 * shape.vocabSize() * shape.hiddenSize() * step.sampled() + attention;
  }

  /**
   * The least time of the step on a device with read bandwidth {@code readBytesPerS} and, when
   * positive, bf16 GEMM rate {@code flopsPerS}: the larger of the two bounds.
   */
  public double seconds(StepTrace step, double readBytesPerS, double flopsPerS) {
    double memory = bytes(step) / readBytesPerS;
    return flopsPerS > 0 ? Math.max(memory, flops(step) / flopsPerS) : memory;
  }
}
