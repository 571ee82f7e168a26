package io.kvasir.nativeapi;

import java.util.Objects;
import org.bytedeco.javacpp.Pointer;

/**
 * The per-sequence KV cache of a {@link Model} ({@code kv_kv_cache_t}): {@code slots} sequences of
 * up to {@code capacity} tokens, K and V in the model's dtype on its device. Contiguous per slot
 * for now; the paged cache replaces it.
 */
public final class KvCache extends NativeHandle {
  private final Model model;
  private final int slots;
  private final int capacity;

  private KvCache(KvasirLibrary.kv_kv_cache handle, Model model, int slots, int capacity) {
    super(handle, "KvCache(" + slots + " x " + capacity + " tokens)");
    this.model = model;
    this.slots = slots;
    this.capacity = capacity;
  }

  /** Allocates a cache of {@code slots} sequences of up to {@code capacity} tokens. */
  public static KvCache create(Model model, int slots, int capacity) {
    Objects.requireNonNull(model, "model");
    KvasirLibrary.kv_kv_cache out = new KvasirLibrary.kv_kv_cache();
    KvasirException.check(KvasirLibrary.kv_kv_cache_init(model.nativeHandle(), slots, capacity, out));
    return new KvCache(out, model, slots, capacity);
  }

  @Override
  void free(Pointer handle) {
    KvasirLibrary.kv_kv_cache_free((KvasirLibrary.kv_kv_cache) handle);
  }

  KvasirLibrary.kv_kv_cache nativeHandle() {
    return (KvasirLibrary.kv_kv_cache) handle();
  }

  public Model model() {
    return model;
  }

  public int slots() {
    return slots;
  }

  public int capacity() {
    return capacity;
  }

  /** Device bytes of K and V together. */
  public long bytes() {
    return KvasirLibrary.kv_kv_cache_bytes(nativeHandle());
  }
}
