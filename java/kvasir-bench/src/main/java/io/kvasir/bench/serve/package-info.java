/**
 * End-to-end serving benchmarks ({@code kvasir-bench serve}): a seeded workload of random-token
 * prompts ({@link io.kvasir.bench.serve.Workload}), offline or with Poisson arrivals, optionally
 * behind a shared prefix; run through {@link io.kvasir.engine.Engine#serve}; summarized as
 * throughput and TTFT / TPOT / ITL / latency percentiles ({@link io.kvasir.bench.serve.ServeReport})
 * against the step roofline. The workload exports as JSON so that a peer (transformers,
 * tools/peers/hf_generate_bench.py) runs the identical requests. docs/benchmarks.md.
 */
package io.kvasir.bench.serve;
