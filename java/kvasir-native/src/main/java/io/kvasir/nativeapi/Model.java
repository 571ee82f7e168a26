package io.kvasir.nativeapi;

import java.util.Objects;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * A transformer resident on one device ({@code kv_model_t}). Weights are copied in once, from
 * host memory such as a memory-mapped checkpoint; {@link KvCache} holds sequences and
 * {@link #step} runs one forward step of a whole batch in a single native call.
 *
 * <p>Close every {@link KvCache} of a model before or after the model: the native side keeps the
 * model's memory until its last cache is gone.
 */
public final class Model extends NativeHandle {
  private final ModelShape shape;
  private final Backend backend;
  private final int device;

  private Model(KvasirLibrary.kv_model handle, ModelShape shape, Backend backend, int device) {
    super(handle, "Model(" + backend + ":" + device + ", " + shape.numLayers() + " layers)");
    this.shape = shape;
    this.backend = backend;
    this.device = device;
  }

  /**
   * Creates a model with no weights on a backend's device.
   *
   * @throws KvasirException naming the configuration field the library refuses
   */
  public static Model create(Backend backend, int device, ModelShape shape) {
    Objects.requireNonNull(backend, "backend");
    Objects.requireNonNull(shape, "shape");
    Kvasir.ensureLoaded();
    KvasirLibrary.kv_model out = new KvasirLibrary.kv_model();
    try (KvasirLibrary.kv_model_config config = shape.toNative()) {
      KvasirException.check(KvasirLibrary.kv_model_init(backend.code(), device, config, out));
    }
    return new Model(out, shape, backend, device);
  }

  @Override
  void free(Pointer handle) {
    KvasirLibrary.kv_model_free((KvasirLibrary.kv_model) handle);
  }

  KvasirLibrary.kv_model nativeHandle() {
    return (KvasirLibrary.kv_model) handle();
  }

  public ModelShape shape() {
    return shape;
  }

  public Backend backend() {
    return backend;
  }

  public int device() {
    return device;
  }

  /**
   * Copies one weight tensor from host memory at {@code address} (e.g. a mapped checkpoint
   * tensor), converting from {@code source} to the model's dtype.
   *
   * @param layer the layer, or -1 for {@link WeightKind#modelLevel() model-level} weights
   * @throws KvasirException naming the weight when its size or kind does not fit the model
   */
  public void setWeight(WeightKind kind, int layer, DType source, long address, long numElements) {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(source, "source");
    if (address == 0) {
      throw new IllegalArgumentException("address of " + kind + " is NULL");
    }
    KvasirException.check(KvasirLibrary.kv_model_set_weight(nativeHandle(), kind.code(), layer, source.code(), address,
        numElements));
  }

  /** Copies one fp32 weight tensor from a Java array (tests and small tensors). */
  public void setWeight(WeightKind kind, int layer, float[] values) {
    Objects.requireNonNull(values, "values");
    try (FloatPointer p = new FloatPointer(values)) {
      setWeight(kind, layer, DType.F32, p.address(), values.length);
    }
  }

  /** Random weights generated on the device (synthetic models): N(0, initStd) matrices, unit norms, zero biases. */
  public void randomize(long seed, float initStd) {
    KvasirException.check(KvasirLibrary.kv_model_randomize(nativeHandle(), seed, initStd));
  }

  /** Throws naming the first weight that was never set. */
  public void checkComplete() {
    KvasirException.check(KvasirLibrary.kv_model_check_complete(nativeHandle()));
  }

  /**
   * Sets a tuning or diagnostic option by name (see kv_model_set_option): {@code cuda_graphs} (0/1),
   * {@code gemv_max_rows} (0..16), {@code profile} (0/1).
   *
   * @throws KvasirException naming an unknown option or a value out of range
   */
  public void setOption(String name, long value) {
    Objects.requireNonNull(name, "name");
    KvasirException.check(KvasirLibrary.kv_model_set_option(nativeHandle(), name, value));
  }

  /** The per-stage device times gathered while the {@code profile} option was on, as a text table. */
  public String profile() {
    try (LongPointer needed = new LongPointer(1)) {
      KvasirException.check(KvasirLibrary.kv_model_profile_read(nativeHandle(), null, 0, needed));
      long size = needed.get();
      try (BytePointer buf = new BytePointer(size)) {
        KvasirException.check(KvasirLibrary.kv_model_profile_read(nativeHandle(), buf, size, null));
        byte[] bytes = new byte[(int) size - 1];  // without the terminating NUL
        buf.get(bytes);
        return new String(bytes, java.nio.charset.StandardCharsets.UTF_8);
      }
    }
  }

  /** Bytes the weights occupy on the device. */
  public long weightBytes() {
    return KvasirLibrary.kv_model_weight_bytes(nativeHandle());
  }

  /**
   * Runs one forward step for a batch and samples the next token of each sequence.
   *
   * @throws KvasirException naming the offending sequence or token when the batch does not fit the cache
   */
  public StepResult step(KvCache cache, StepBatch batch) {
    Objects.requireNonNull(cache, "cache");
    Objects.requireNonNull(batch, "batch");
    if (cache.model() != this) {
      throw new IllegalArgumentException("the cache belongs to another model");
    }
    int n = batch.size();
    int[] sampled = new int[n];
    float[] logits = batch.wantLogits() ? new float[Math.multiplyExact(n, shape.vocabSize())] : null;
    SamplingColumns c = batch.samplingColumns();
    KvasirException.check(KvasirLibrary.kv_model_step(nativeHandle(), cache.nativeHandle(), n, batch.slots(),
        batch.startPositions(), batch.newTokenCounts(), batch.tokens(), c.temperature(), c.topK(), c.topP(), c.minP(),
        c.repetitionPenalty(), c.seed(), c.requestId(), sampled, logits));
    return new StepResult(sampled, logits, shape.vocabSize());
  }

  /**
   * Runs one forward step over a paged cache and samples the next token of each sequence.
   *
   * @throws KvasirException naming the offending sequence, page or token when the batch does not fit
   */
  public StepResult stepPaged(PagedKvCache cache, PagedStepBatch batch) {
    Objects.requireNonNull(cache, "cache");
    Objects.requireNonNull(batch, "batch");
    if (cache.model() != this) {
      throw new IllegalArgumentException("the cache belongs to another model");
    }
    int n = batch.size();
    SamplingColumns c = batch.samplingColumns();
    int stride = batch.tableStride();
    int[] sampled = new int[n];
    float[] logits = batch.wantLogits() ? new float[Math.multiplyExact(n, shape.vocabSize())] : null;
    KvasirException.check(KvasirLibrary.kv_model_step_paged(nativeHandle(), cache.nativeHandle(), n,
        batch.pageTables(stride), stride, batch.startPositions(), batch.newTokenCounts(), batch.tokens(),
        batch.policy(), c.temperature(), c.topK(), c.topP(), c.minP(), c.repetitionPenalty(), c.seed(), c.requestId(),
        sampled, logits));
    return new StepResult(sampled, logits, shape.vocabSize());
  }
}
