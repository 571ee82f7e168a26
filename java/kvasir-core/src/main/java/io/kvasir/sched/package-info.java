/**
 * Continuous batching: which sequences run in the next engine step, how many of their tokens,
 * and which wait or are preempted, under a token budget and the KV pages of a
 * {@link io.kvasir.cache.KvCacheManager}. Plain Java, tested without native code against a
 * simulated paged model.
 */
package io.kvasir.sched;
