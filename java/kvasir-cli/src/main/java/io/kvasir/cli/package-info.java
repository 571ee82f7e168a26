/**
 * The {@code kvasir} command line: {@link io.kvasir.cli.KvasirCli} and its subcommands. What a
 * command prints is its user interface and goes to picocli's output writer; diagnostics go
 * through Log4j to stderr ({@code --verbose} or {@code -Dkvasir.log.level=info} raises them).
 */
package io.kvasir.cli;
