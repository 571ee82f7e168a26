package io.kvasir.bench.report;

import java.nio.file.Path;
import java.util.List;

/**
 * A peer's run of an exported workload ({@code kvasir-peer/1}, for example transformers'
 * {@code generate} on the requests of {@code serve --export-workload}).
 *
 * @param topic        the record's topic ({@code serve-offline-transformers})
 * @param peer         who ran it ({@code transformers 5.17.0})
 * @param workloadFile the exported workload file it ran, as named in the record
 * @param figures      the figures named as in {@link ServeRun#figures()}, so that rows line up
 */
public record PeerRun(Path file, RunInfo info, String topic, String peer, String workloadFile, Long seed,
    Integer requests, Long promptTokens, Long outputTokens, List<Figure> figures) implements Run {

  @Override
  public String kind() {
    return "peer";
  }

  String label() {
    return peer;
  }
}
