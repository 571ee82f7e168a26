/**
 * Perf records (DESIGN.md "Rooflines and the perf record"): the header every record carries
 * (date, commit, device line, library, command) and the cost model that turns an engine step
 * into the bytes and FLOPs its roofline is measured against. Shared by {@code kvasir generate}
 * and {@code kvasir-bench serve}.
 */
package io.kvasir.perf;
