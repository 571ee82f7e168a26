package io.kvasir.nativeapi;

/**
 * A tensor argument: a {@link Buffer} and the offset, in elements of the argument's dtype, where
 * the tensor starts. A Buffer is its own view at offset 0; {@link Buffer#at(long)} makes others.
 * {@link Ops} checks that the tensor fits between the offset and the end of the buffer.
 */
public sealed interface BufferView permits Buffer, BufferSlice {
  /** The buffer holding the tensor. */
  Buffer buffer();

  /** Where the tensor starts, in elements of the dtype it is read as. */
  long offset();
}
