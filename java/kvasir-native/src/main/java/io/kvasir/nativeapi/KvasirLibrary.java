package io.kvasir.nativeapi;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.annotation.ByPtrPtr;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.MemberGetter;
import org.bytedeco.javacpp.annotation.Name;
import org.bytedeco.javacpp.annotation.Opaque;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * Raw JavaCPP binding of every function of {@code include/kvasir/kvasir.h}, one Java method per
 * C function, same names. Nothing outside this package sees it: the typed API ({@link Kvasir},
 * {@link Buffer}, {@link Stream}, {@link Ops}, ...) checks arguments, turns statuses into
 * {@link KvasirException}s and owns the handles.
 *
 * <p>Conventions of this binding:
 * <ul>
 *   <li>C enums travel as {@code int} with a {@code @Cast} to the enum type, so the Java enums
 *       ({@link Status}, {@link Backend}, ...) stay plain Java and unknown values can be reported.
 *   <li>Tensor and data pointers ({@code void*}, {@code float*}, {@code int64_t*} in stream
 *       memory) travel as {@code long} addresses: the typed API computes
 *       {@code Buffer.address() + offset} after its bounds checks, and no Pointer object is made
 *       per call. 0 is NULL.
 *   <li>Opaque handles are {@code @Opaque} Pointer subclasses; {@code kv_x_t* out} parameters are
 *       {@code @ByPtrPtr} so JavaCPP writes the new handle into the Java object.
 * </ul>
 *
 * <p>Loading this class loads {@code libkvasir.so} and its JNI glue from the jar
 * ({@code io/kvasir/nativeapi/linux-x86_64/}); {@link Kvasir#ensureLoaded()} does it once and
 * checks the ABI version before anything else may call in.
 */
@Platform(include = "kvasir/kvasir.h", link = "kvasir")
final class KvasirLibrary {
  static {
    Loader.load();
  }

  private KvasirLibrary() {}

  // ---------------------------------------------------------------- opaque handles

  /** {@code struct kv_buffer}, used through {@code kv_buffer_t}. */
  @Opaque
  @Name("kv_buffer")
  static final class kv_buffer extends Pointer {
    kv_buffer() {
      super((Pointer) null);
    }

    kv_buffer(Pointer p) {
      super(p);
    }
  }

  /** {@code struct kv_stream}, used through {@code kv_stream_t}. */
  @Opaque
  @Name("kv_stream")
  static final class kv_stream extends Pointer {
    kv_stream() {
      super((Pointer) null);
    }

    kv_stream(Pointer p) {
      super(p);
    }
  }

  /** {@code struct kv_event}, used through {@code kv_event_t}. */
  @Opaque
  @Name("kv_event")
  static final class kv_event extends Pointer {
    kv_event() {
      super((Pointer) null);
    }

    kv_event(Pointer p) {
      super(p);
    }
  }

  /** {@code struct kv_model}, used through {@code kv_model_t}. */
  @Opaque
  @Name("kv_model")
  static final class kv_model extends Pointer {
    kv_model() {
      super((Pointer) null);
    }

    kv_model(Pointer p) {
      super(p);
    }
  }

  /** {@code struct kv_kv_cache}, used through {@code kv_kv_cache_t}. */
  @Opaque
  @Name("kv_kv_cache")
  static final class kv_kv_cache extends Pointer {
    kv_kv_cache() {
      super((Pointer) null);
    }

    kv_kv_cache(Pointer p) {
      super(p);
    }
  }

  // ---------------------------------------------------------------- structs

  /** {@code kv_device_props}; allocated by JavaCPP (zeroed), freed by {@link #close()}. */
  @Name("kv_device_props")
  static final class kv_device_props extends Pointer {
    static {
      Loader.load();
    }

    kv_device_props() {
      super((Pointer) null);
      allocate();
    }

    private native void allocate();

    native int backend();

    native kv_device_props backend(int value);

    native int ordinal();

    native kv_device_props ordinal(int value);

    /** {@code char name[128]}, NUL-terminated. */
    @MemberGetter
    @Cast("char*")
    native BytePointer name();

    /** {@code char arch[32]}, NUL-terminated. */
    @MemberGetter
    @Cast("char*")
    native BytePointer arch();

    @Cast("uint64_t")
    native long total_memory_bytes();

    native kv_device_props total_memory_bytes(@Cast("uint64_t") long value);

    native int compute_units();

    native kv_device_props compute_units(int value);

    native int compute_major();

    native kv_device_props compute_major(int value);

    native int compute_minor();

    native kv_device_props compute_minor(int value);

    native int pci_bus_id();

    native kv_device_props pci_bus_id(int value);

    @Cast("uint64_t")
    native long l2_cache_bytes();

    native kv_device_props l2_cache_bytes(@Cast("uint64_t") long value);

    @Cast("uint64_t")
    native long shared_memory_per_block_bytes();

    native kv_device_props shared_memory_per_block_bytes(@Cast("uint64_t") long value);
  }

  /** {@code kv_roofline}; allocated by JavaCPP (zeroed), freed by {@link #close()}. */
  @Name("kv_roofline")
  static final class kv_roofline extends Pointer {
    static {
      Loader.load();
    }

    kv_roofline() {
      super((Pointer) null);
      allocate();
    }

    private native void allocate();

    native double read_bytes_per_s();

    native kv_roofline read_bytes_per_s(double value);

    native double copy_bytes_per_s();

    native kv_roofline copy_bytes_per_s(double value);

    native double h2d_bytes_per_s();

    native kv_roofline h2d_bytes_per_s(double value);

    native double d2h_bytes_per_s();

    native kv_roofline d2h_bytes_per_s(double value);

    native double gemm_bf16_flops_per_s();

    native kv_roofline gemm_bf16_flops_per_s(double value);

    @Cast("uint64_t")
    native long buffer_bytes();

    native kv_roofline buffer_bytes(@Cast("uint64_t") long value);

    native int repetitions();

    native kv_roofline repetitions(int value);
  }

  /** {@code kv_model_config}; allocated by JavaCPP (zeroed), freed by {@link #close()}. */
  @Name("kv_model_config")
  static final class kv_model_config extends Pointer {
    static {
      Loader.load();
    }

    kv_model_config() {
      super((Pointer) null);
      allocate();
    }

    private native void allocate();

    // JavaCPP maps a getter and setter pair of the same name onto the struct member.

    native int vocab_size();

    native kv_model_config vocab_size(int value);

    native int hidden_size();

    native kv_model_config hidden_size(int value);

    native int intermediate_size();

    native kv_model_config intermediate_size(int value);

    native int num_layers();

    native kv_model_config num_layers(int value);

    native int num_q_heads();

    native kv_model_config num_q_heads(int value);

    native int num_kv_heads();

    native kv_model_config num_kv_heads(int value);

    native int head_dim();

    native kv_model_config head_dim(int value);

    native int max_positions();

    native kv_model_config max_positions(int value);

    native float rms_norm_eps();

    native kv_model_config rms_norm_eps(float value);

    native float rope_theta();

    native kv_model_config rope_theta(float value);

    native int rope_scaling();

    native kv_model_config rope_scaling(int value);

    native float rope_factor();

    native kv_model_config rope_factor(float value);

    native float rope_low_freq_factor();

    native kv_model_config rope_low_freq_factor(float value);

    native float rope_high_freq_factor();

    native kv_model_config rope_high_freq_factor(float value);

    native int rope_original_max_positions();

    native kv_model_config rope_original_max_positions(int value);

    native int qk_norm();

    native kv_model_config qk_norm(int value);

    native int qkv_bias();

    native kv_model_config qkv_bias(int value);

    native int tie_word_embeddings();

    native kv_model_config tie_word_embeddings(int value);

    native int weight_dtype();

    native kv_model_config weight_dtype(int value);
  }

  // ---------------------------------------------------------------- version, status

  static native int kv_abi_version();

  @Cast("const char*")
  static native String kv_build_info();

  @Cast("const char*")
  static native String kv_status_to_string(@Cast("kv_status") int status);

  @Cast("const char*")
  static native String kv_last_error();

  static native void kv_clear_last_error();

  // ---------------------------------------------------------------- backends, devices

  static native int kv_backend_compiled(@Cast("kv_backend") int backend);

  @Cast("kv_status")
  static native int kv_device_count(@Cast("kv_backend") int backend, @Cast("int32_t*") int[] out_count);

  @Cast("kv_status")
  static native int kv_device_get_props(@Cast("kv_backend") int backend, int ordinal, kv_device_props out);

  @Cast("kv_cpu_isa")
  static native int kv_cpu_isa_active();

  @Cast("kv_status")
  static native int kv_cpu_isa_set_max(@Cast("kv_cpu_isa") int isa);

  // ---------------------------------------------------------------- memory tiers

  @Cast("kv_status")
  static native int kv_buffer_init(@Cast("kv_backend") int backend, int device, @Cast("kv_mem_tier") int tier,
      @Cast("uint64_t") long size_bytes, @ByPtrPtr kv_buffer out);

  static native void kv_buffer_free(kv_buffer buffer);

  @Cast("uintptr_t")
  static native long kv_buffer_data(kv_buffer buffer);

  @Cast("uint64_t")
  static native long kv_buffer_size_bytes(kv_buffer buffer);

  @Cast("kv_mem_tier")
  static native int kv_buffer_tier(kv_buffer buffer);

  @Cast("kv_backend")
  static native int kv_buffer_backend(kv_buffer buffer);

  @Cast("kv_status")
  static native int kv_mem_live(@Cast("kv_mem_tier") int tier, @Cast("int64_t*") long[] out_count,
      @Cast("int64_t*") long[] out_bytes);

  // ---------------------------------------------------------------- streams, events

  @Cast("kv_status")
  static native int kv_stream_init(@Cast("kv_backend") int backend, int device, @ByPtrPtr kv_stream out);

  static native void kv_stream_free(kv_stream stream);

  @Cast("kv_backend")
  static native int kv_stream_backend(kv_stream stream);

  static native int kv_stream_device(kv_stream stream);

  @Cast("kv_status")
  static native int kv_stream_synchronize(kv_stream stream);

  @Cast("kv_status")
  static native int kv_event_init(kv_stream stream, @ByPtrPtr kv_event out);

  static native void kv_event_free(kv_event event);

  @Cast("kv_status")
  static native int kv_event_record(kv_event event, kv_stream stream);

  @Cast("kv_status")
  static native int kv_event_synchronize(kv_event event);

  @Cast("kv_status")
  static native int kv_stream_wait_event(kv_stream stream, kv_event event);

  @Cast("kv_status")
  static native int kv_event_elapsed_ms(kv_event start, kv_event end, float[] out_ms);

  // ---------------------------------------------------------------- copies

  @Cast("kv_status")
  static native int kv_memcpy_async(kv_stream stream, @Cast("void*") long dst, @Cast("const void*") long src,
      @Cast("uint64_t") long size_bytes);

  @Cast("kv_status")
  static native int kv_memset_async(kv_stream stream, @Cast("void*") long dst, int value,
      @Cast("uint64_t") long size_bytes);

  @Cast("kv_status")
  static native int kv_page_copy_async(kv_stream stream, @Cast("void*") long dst_base, long dst_capacity_pages,
      @Cast("const void*") long src_base, long src_capacity_pages, @Cast("uint64_t") long page_bytes,
      @Cast("const int64_t*") long src_pages, @Cast("const int64_t*") long dst_pages, long num_pages);

  // ---------------------------------------------------------------- attention states

  @Cast("kv_status")
  static native int kv_merge_state_async(kv_stream stream, @Cast("kv_dtype") int dtype,
      @Cast("const void*") long o_a, @Cast("const float*") long lse_a,
      @Cast("const void*") long o_b, @Cast("const float*") long lse_b,
      @Cast("void*") long o_out, @Cast("float*") long lse_out, long rows, int head_dim);

  @Cast("kv_status")
  static native int kv_merge_state_inplace_async(kv_stream stream, @Cast("kv_dtype") int dtype,
      @Cast("void*") long o, @Cast("float*") long lse,
      @Cast("const void*") long o_other, @Cast("const float*") long lse_other, long rows, int head_dim);

  @Cast("kv_status")
  static native int kv_merge_states_async(kv_stream stream, @Cast("kv_dtype") int dtype,
      @Cast("const void*") long o_states, @Cast("const float*") long lse_states, int num_states,
      @Cast("void*") long o_out, @Cast("float*") long lse_out, long rows, int head_dim);

  // ---------------------------------------------------------------- dense decode attention

  @Cast("kv_status")
  static native int kv_attention_decode_async(kv_stream stream, @Cast("kv_dtype") int dtype,
      @Cast("const void*") long q, @Cast("const void*") long k, @Cast("const void*") long v,
      @Cast("void*") long o, @Cast("float*") long lse, int batch, int num_q_heads, int num_kv_heads,
      int head_dim, long kv_len, float sm_scale, @Cast("void*") long workspace,
      @Cast("uint64_t") long workspace_bytes);

  @Cast("uint64_t")
  static native long kv_attention_decode_workspace_bytes(kv_stream stream, int batch, int num_q_heads,
      int head_dim, long kv_len);

  // ---------------------------------------------------------------- roofline probe

  @Cast("kv_status")
  static native int kv_roofline_probe(kv_stream stream, @Cast("uint64_t") long buffer_bytes, int repetitions,
      kv_roofline out);
  // ---------------------------------------------------------------- model runtime

  @Cast("kv_status")
  static native int kv_model_init(@Cast("kv_backend") int backend, int device, kv_model_config config,
      @ByPtrPtr kv_model out);

  static native void kv_model_free(kv_model model);

  @Cast("kv_status")
  static native int kv_model_set_weight(kv_model model, int kind, int layer, int src_dtype,
      @Cast("const void*") long host_data, long num_elements);

  @Cast("kv_status")
  static native int kv_model_randomize(kv_model model, @Cast("uint64_t") long seed, float init_std);

  @Cast("kv_status")
  static native int kv_model_check_complete(kv_model model);

  @Cast("uint64_t")
  static native long kv_model_weight_bytes(kv_model model);

  @Cast("kv_status")
  static native int kv_model_set_option(kv_model model, String name, @Cast("int64_t") long value);

  @Cast("kv_status")
  static native int kv_model_profile_read(kv_model model, @Cast("char*") BytePointer buf,
      @Cast("uint64_t") long capacity, @Cast("uint64_t*") LongPointer needed_out);

  @Cast("kv_status")
  static native int kv_kv_cache_init(kv_model model, int num_slots, int slot_capacity_tokens,
      @ByPtrPtr kv_kv_cache out);

  static native void kv_kv_cache_free(kv_kv_cache cache);

  @Cast("uint64_t")
  static native long kv_kv_cache_bytes(kv_kv_cache cache);

  @Cast("kv_status")
  static native int kv_paged_cache_init(kv_model model, int num_pages, int page_tokens, int key_summaries,
      @ByPtrPtr kv_kv_cache out);

  @Cast("kv_status")
  static native int kv_paged_cache_copy_pages(kv_kv_cache cache, @Cast("const int32_t*") int[] src,
      @Cast("const int32_t*") int[] dst, int num_copies);

  /**
   * kv_model_step over a paged cache. {@code policy} is {selection, top_k}: a kv_step_policy is
   * two int32 fields, so an int[2] has its layout (null passes NULL: every page).
   */
  @Cast("kv_status")
  static native int kv_model_step_paged(kv_model model, kv_kv_cache cache, int num_seqs,
      @Cast("const int32_t*") int[] page_tables, int table_stride, @Cast("const int32_t*") int[] start_pos,
      @Cast("const int32_t*") int[] num_new, @Cast("const int32_t*") int[] token_ids,
      @Cast("const kv_step_policy*") int[] policy, @Cast("const float*") float[] temperature,
      @Cast("const int32_t*") int[] top_k, @Cast("const float*") float[] top_p, @Cast("const float*") float[] min_p,
      @Cast("const float*") float[] repetition_penalty, @Cast("const uint64_t*") long[] seed,
      @Cast("const uint64_t*") long[] request_id, @Cast("int32_t*") int[] sampled, @Cast("float*") float[] logits);

  /** Arrays are copied in (and {@code sampled}, {@code logits} back out); null passes NULL. */
  @Cast("kv_status")
  static native int kv_model_step(kv_model model, kv_kv_cache cache, int num_seqs, @Cast("const int32_t*") int[] slots,
      @Cast("const int32_t*") int[] start_pos, @Cast("const int32_t*") int[] num_new,
      @Cast("const int32_t*") int[] token_ids, @Cast("const float*") float[] temperature,
      @Cast("const int32_t*") int[] top_k, @Cast("const float*") float[] top_p, @Cast("const float*") float[] min_p,
      @Cast("const float*") float[] repetition_penalty, @Cast("const uint64_t*") long[] seed,
      @Cast("const uint64_t*") long[] request_id, @Cast("int32_t*") int[] sampled, @Cast("float*") float[] logits);
}
