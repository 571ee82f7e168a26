/**
 * Java references of the native operations and the self-check that holds the native kernels to
 * them.
 *
 * <p>{@link io.kvasir.ops.ReferenceOps} computes the attention-state merge and single-query
 * attention in double precision, written independently of the C++ and CUDA code from the
 * semantics of {@code include/kvasir/kvasir.h}. {@link io.kvasir.ops.ErrorBounds} derives, per
 * output element, how far a correct fp32 (or bf16-output) kernel may be from that reference.
 * {@link io.kvasir.ops.SelfCheck} runs every op on every backend with a usable device, on fresh
 * random inputs with poisoned outputs, and reports each check's worst error against its bound.
 */
package io.kvasir.ops;
