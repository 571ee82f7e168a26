/**
 * The cache-policy SPI: what a component of a policy declares (page-table granularity, memory
 * tiers, page formats, key summaries), the per-step Java hooks it implements, and the per-layer
 * native work it selects by kernel id. docs/cache-policy-spi.md maps OPKV's plugin callbacks onto
 * this split and gives the contract for the components still to come.
 */
package io.kvasir.policy.spi;
