package io.kvasir.bench.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The runs of some record files and directories. A file named on the command line must be a
 * record; in a directory (not recursed) every {@code *.json} and {@code *.jsonl} is tried, files
 * of no known format are listed as skipped, and {@code summary.json} (the runner's index of a
 * {@code --out} directory) is passed over: the records it lists are the directory's files. A recognized file with a missing or malformed
 * field fails the whole load, naming the file and the field.
 *
 * @param skipped the files a directory held that are not records, with the reason
 */
public record RunSet(List<Run> runs, List<Skipped> skipped) {
  /** The index file a {@code kvasir-bench run --out DIR} writes beside its records. */
  public static final String INDEX = "summary.json";

  public record Skipped(Path file, String reason) {}

  public static RunSet load(List<Path> paths) {
    List<Run> runs = new ArrayList<>();
    List<Skipped> skipped = new ArrayList<>();
    Set<Path> seen = new LinkedHashSet<>();
    for (Path p : paths) {
      if (Files.isDirectory(p)) {
        for (Path f : list(p)) {
          if (!seen.add(f.toAbsolutePath().normalize())) {
            continue;
          }
          if (f.getFileName().toString().equals(INDEX)) {
            continue;
          }
          try {
            runs.addAll(RecordLoader.load(f));
          } catch (UnrecognizedRecordException e) {
            skipped.add(new Skipped(f, e.getMessage().substring(f.toString().length() + 2)));
          }
        }
      } else if (Files.isRegularFile(p)) {
        if (seen.add(p.toAbsolutePath().normalize())) {
          runs.addAll(RecordLoader.load(p));
        }
      } else {
        throw new RecordException(p, "no such file or directory");
      }
    }
    return new RunSet(List.copyOf(runs), List.copyOf(skipped));
  }

  private static List<Path> list(Path dir) {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(Files::isRegularFile)
          .filter(f -> f.getFileName().toString().endsWith(".json") || f.getFileName().toString().endsWith(".jsonl"))
          .sorted()
          .toList();
    } catch (IOException e) {
      throw new RecordException(dir, "cannot list: " + e.getMessage(), e);
    }
  }

  public <T extends Run> List<T> of(Class<T> type) {
    return runs.stream().filter(type::isInstance).map(type::cast).toList();
  }
}
