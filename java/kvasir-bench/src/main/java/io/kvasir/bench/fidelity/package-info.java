/**
 * Fidelity of a cache policy against full KV on identical prompts ({@code kvasir-bench fidelity}):
 * the full-KV greedy continuation is teacher-forced through the policy's decode path
 * ({@link io.kvasir.engine.Engine#forceDecode}) and the two next-token distributions are compared
 * per step ({@link io.kvasir.bench.fidelity.Divergence}: KL in nats, top-1 agreement); free-running
 * greedy generation under the policy gives the first divergence position and the token agreement.
 * {@link io.kvasir.bench.fidelity.FidelityRunner} runs it, {@link io.kvasir.bench.fidelity.FidelitySummary}
 * aggregates it. docs/fidelity.md.
 */
package io.kvasir.bench.fidelity;
