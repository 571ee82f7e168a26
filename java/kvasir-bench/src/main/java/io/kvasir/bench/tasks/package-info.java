/**
 * The long-context task generator: one source of prompts for training, Kvasir and transformers.
 * {@link io.kvasir.bench.tasks.TaskGenerator} makes deterministic
 * {@link io.kvasir.bench.tasks.TaskRecord}s (passkey, needle-in-a-haystack variants, key-value
 * retrieval, variable tracking, arithmetic with a reasoning trace, independent-document QA,
 * common-word extraction)
 * filled to a token budget measured by a {@link io.kvasir.bench.tasks.TokenCounter};
 * {@link io.kvasir.bench.tasks.TaskStream} writes them as JSON lines in parallel and in order;
 * {@link io.kvasir.bench.tasks.TaskScorer} scores a model's output. Templates, schema and rules:
 * docs/bench-tasks.md.
 */
package io.kvasir.bench.tasks;
