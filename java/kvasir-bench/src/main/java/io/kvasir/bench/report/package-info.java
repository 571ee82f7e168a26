/**
 * Tables and charts of benchmark records ({@code kvasir-bench compare} and {@code report}): a set
 * of runs ({@link io.kvasir.bench.report.RunSet}) loaded from the records' JSON only — serving
 * records ({@code kvasir-perf/1}, topic {@code serve}), transformers peer records
 * ({@code kvasir-peer/1}), accuracy records ({@code kvasir-bench eval --out}), kernel records
 * (JSON lines of {@code tests-native/bench_*}, or a {@code kvasir-perf/1} record with
 * {@code figures}) — recognized by their fields. Renderers: markdown tables side by side against
 * a baseline column ({@link io.kvasir.bench.report.MarkdownReport}) and JFreeChart charts drawn
 * headless into SVG ({@link io.kvasir.bench.report.Charts}). docs/reports.md.
 */
package io.kvasir.bench.report;
