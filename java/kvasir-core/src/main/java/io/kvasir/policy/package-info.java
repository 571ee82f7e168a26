/**
 * Cache policies: what a policy is made of (one component per axis of DESIGN.md: format,
 * placement, eviction, reuse) and the one spec syntax the API, CLI, server and bench share
 * ({@code kitty:boost=0.25+quest:k=64}; lists separated by {@code ;}). Plain Java, no native
 * code: the engine turns a resolved {@link io.kvasir.policy.Policy} into kernel ids and
 * parameters.
 */
package io.kvasir.policy;
