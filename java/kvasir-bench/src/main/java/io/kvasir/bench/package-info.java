/**
 * The {@code kvasir-bench} command line ({@link io.kvasir.bench.BenchMain}): {@code tasks} writes
 * long-context task records as JSON lines, {@code eval} measures a model's accuracy on them
 * through the engine, {@code ppl} the perplexity of held-out prose. Results go to picocli's
 * output writer (records to stdout or a file); progress and diagnostics go through Log4j to stderr.
 */
package io.kvasir.bench;
