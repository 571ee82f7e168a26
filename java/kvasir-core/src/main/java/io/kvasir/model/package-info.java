/**
 * Hugging Face checkpoints: {@code config.json} ({@link io.kvasir.model.ModelConfig}),
 * memory-mapped safetensors files, single or sharded ({@link io.kvasir.model.SafetensorsFile},
 * {@link io.kvasir.model.SafetensorsIndex}), and the directory as a whole, checked against the
 * architecture's expected tensors ({@link io.kvasir.model.Checkpoint},
 * {@link io.kvasir.model.Weight}).
 *
 * <p>{@link io.kvasir.model.TinyCheckpoints} writes small models with random weights in the same
 * format, for tests and for the README's first command before a trained model ships.
 *
 * <p>Every problem with a model directory is a {@link io.kvasir.model.CheckpointException} whose
 * message names the file and the field or tensor, fit to show a user as it is. Nothing here
 * copies a tensor onto the Java heap: tensors are views of the mappings, with native addresses
 * for the engine's one-time copy to the device.
 */
package io.kvasir.model;
