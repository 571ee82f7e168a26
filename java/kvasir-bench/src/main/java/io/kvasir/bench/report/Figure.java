package io.kvasir.bench.report;

/**
 * One named number of a run, its unit in the name ({@code TTFT p99 (ms)}).
 *
 * @param name           the row label in tables
 * @param value          the number
 * @param higherIsBetter whether a larger value is the better one (throughput) or not (latency);
 *                       null when it is neither (counts)
 */
public record Figure(String name, double value, Boolean higherIsBetter) {}
