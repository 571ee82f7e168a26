package io.kvasir.engine;

/**
 * What one engine step of {@link Engine#serve} computed, for rooflines: the bytes and FLOPs a
 * step must move follow from these counts and the model's shape (see
 * {@code io.kvasir.perf.StepCost}).
 *
 * @param sequences      sequences in the step
 * @param tokens         tokens computed (prefill chunks and decodes)
 * @param sampled        sequences that sampled a token (decodes and last prefill chunks: LM-head rows)
 * @param kvReadTokens   KV tokens the step's attention reads under full attention: per sequence,
 *                       its context up to and including the step's tokens
 * @param attendedPairs  (query, key) pairs of causal attention under full attention: per sequence of
 *                       {@code n} new tokens after {@code s} cached ones, {@code n*s + n(n+1)/2}
 * @param nanos          wall time of the step on the engine's clock (planning, native step, bookkeeping)
 */
public record StepTrace(int sequences, int tokens, int sampled, long kvReadTokens, long attendedPairs, long nanos) {}
