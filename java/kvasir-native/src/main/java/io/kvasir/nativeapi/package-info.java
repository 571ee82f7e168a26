/**
 * The Java face of libkvasir: JavaCPP bindings of the C ABI ({@code include/kvasir/kvasir.h})
 * and the typed, checked API over them.
 *
 * <p>Everything that touches JavaCPP lives here and nowhere else. The raw binding
 * ({@code KvasirLibrary}) is package-private; callers use {@link io.kvasir.nativeapi.Kvasir}
 * (loading, ABI check, build info), {@link io.kvasir.nativeapi.Buffer},
 * {@link io.kvasir.nativeapi.Stream} and {@link io.kvasir.nativeapi.Event} (owned native handles,
 * closed with try-with-resources), {@link io.kvasir.nativeapi.Ops} (the kernels, with sizes
 * checked against the buffers before native code runs), {@link io.kvasir.nativeapi.Devices},
 * {@link io.kvasir.nativeapi.Memory} and {@link io.kvasir.nativeapi.Roofline}. Every non-zero
 * {@code kv_status} becomes a {@link io.kvasir.nativeapi.KvasirException} carrying the status and
 * the library's message. {@link io.kvasir.nativeapi.CudaDiagnostics} reads driver facts through
 * the JavaCPP CUDA presets and never fails for lack of a driver.
 *
 * <p>Handles are not thread-safe against a concurrent {@code close()}: close a handle only when no
 * other thread uses it and no stream work that uses it is still queued.
 */
package io.kvasir.nativeapi;
