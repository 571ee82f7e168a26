package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import io.kvasir.testing.CliRun;

/** {@code kvasir-bench compare} and {@code report} end to end on copies of the committed docs/perf records. */
class ReportCommandsTest {
  @TempDir
  Path tmp;

  private static CliRun run(String... args) {
    return CliRun.of(BenchMain.commandLine(), args);
  }

  // The snapshot of real records in the test resources (see report.ReportFixtures).
  private static Path docsPerf() {
    try {
      return Path.of(ReportCommandsTest.class.getResource("report/records/2026-11-29-kernels.json").toURI()).getParent();
    } catch (java.net.URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }


  private Path copyRecords() throws IOException {
    Path dir = tmp.resolve("out");
    Files.createDirectories(dir);
    try (Stream<Path> s = Files.list(docsPerf())) {
      for (Path p : s.filter(f -> f.toString().endsWith(".json")).toList()) {
        Files.copy(p, dir.resolve(p.getFileName()));
      }
    }
    return dir;
  }

  /** Every {@code ![..](link)} of the markdown points at an existing file. */
  private static int assertLinksResolve(Path md) throws IOException {
    Matcher m = Pattern.compile("!\\[[^\\]]*\\]\\(([^)]+)\\)").matcher(Files.readString(md));
    int n = 0;
    while (m.find()) {
      Path target = md.getParent().resolve(m.group(1));
      assertTrue(Files.isRegularFile(target) && target.toString().endsWith(".svg"), "link " + m.group(1));
      ++n;
    }
    return n;
  }

  @Test
  void reportRendersAWholeDirectory() throws Exception {
    Path dir = copyRecords();
    Files.writeString(dir.resolve("summary.json"), "{\"record\": \"kvasir-bench-run/1\", \"command\":"
        + " \"kvasir-bench run --out somewhere\", \"records\": [{\"file\": \"a.json\", \"workload\": \"offline\","
        + " \"policy\": \"full\", \"status\": \"ok\"}, {\"file\": \"b.json\", \"workload\": \"rag\","
        + " \"policy\": \"h2o\", \"status\": \"failed\", \"error\": \"out of memory\"}]}");
    CliRun r = run("report", dir.toString());
    assertEquals(0, r.exit(), r.err());
    String md = Files.readString(dir.resolve("report.md"));
    assertTrue(md.startsWith("# Benchmark report\n"), md);
    assertTrue(md.contains("The runs: `kvasir-bench run --out somewhere`."), "the index's command");
    assertTrue(md.contains("so without a record:\n\n- rag under `h2o`: failed (out of memory)\n"), md);
    assertFalse(md.contains("offline under `full`"), "runs that succeeded are not listed as failed");
    // Provenance: command, device, date, commit of the runs.
    assertTrue(md.contains("`kvasir-bench serve --model synthetic:llama3-8b"), "commands");
    assertTrue(md.contains("NVIDIA H200, 580.159.04"), "device");
    assertTrue(md.contains("Dates: 2026-11-29"), "date");
    assertTrue(md.contains("56dce19be1d2"), "commit");
    // Sections of every kind, the peer beside its Kvasir run, the kernels against their rooflines.
    for (String h : List.of("## Serving", "## Accuracy", "## Kernels", "## Runs", "## Files not read")) {
      assertTrue(md.contains("\n" + h + "\n"), h);
    }
    assertTrue(md.contains("| figure | full | transformers 5.17.0 |"), "peer column");
    assertTrue(md.contains("| output tokens/s | 1140 | 127 (0.11x) |"), "Kvasir 1140.4, transformers 126.8");
    assertTrue(md.contains("| figure | full | full (no prefix cache) |"), "prefix cache on and off side by side");
    assertTrue(md.contains("| paged_decode | tensor-core | dtype=bf16,batch=32,ctx=32768,hq=32,hkv=8,d=128,page_tokens=16"
        + " | 0.996 | 4311 GB/s | read (4479 GB/s) | 96.3% | yes |"), "a kernel row");
    assertTrue(md.contains("| 2026-11-29-parity.json |"), "unrecognized files are listed");
    assertFalse(md.contains("summary.json |"), "the index is not listed as a skipped record");

    Path charts = dir.resolve("charts");
    try (Stream<Path> s = Files.list(charts)) {
      List<Path> svgs = s.toList();
      assertTrue(svgs.size() >= 8, "charts: " + svgs);
      for (Path svg : svgs) {
        assertTrue(svg.toString().endsWith(".svg") && Files.size(svg) > 1000, svg.toString());
      }
      assertEquals(svgs.size(), assertLinksResolve(dir.resolve("report.md")), "each chart linked once");
    }
  }

  @Test
  void compareWritesMarkdownAndCharts() throws Exception {
    Path dir = copyRecords();
    Path md = tmp.resolve("cmp/compare.md");
    Path charts = tmp.resolve("cmp/charts");
    CliRun r = run("compare", dir.resolve("2026-11-29-serve-subsample.json").toString(),
        dir.resolve("2026-11-29-serve-subsample-hf.json").toString(),
        dir.resolve("2026-11-29-quest-accuracy-cpu-full.json").toString(),
        dir.resolve("2026-11-29-quest-accuracy-cpu-quest_k_4.json").toString(),
        "--baseline", "full", "--md", md.toString(), "--charts", charts.toString());
    assertEquals(0, r.exit(), r.err());
    String text = Files.readString(md);
    assertTrue(text.contains("Rendered by `kvasir-bench compare "), text);
    assertTrue(text.contains("peers matched on workload seed 0, 64 requests, 302862 prompt tokens, 16384 output tokens"),
        text);
    assertTrue(text.contains("| niah_multikey @ 2048 | 0.667 (n=24) | 0.208 (n=24, -0.458) |"), text);
    assertTrue(assertLinksResolve(md) >= 3, "TTFT, TPOT and accuracy charts");
  }

  @Test
  void compareToStdoutWithoutCharts() {
    CliRun r = run("compare", docsPerf().resolve("2026-11-29-paged-quest.json").toString());
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("| quest_select | — | batch=32,kv_len=32768,P=16,top_k=64,Hq=32,Hkv=8,D=128,bf16 | 0.132 |"),
        r.out());
    assertFalse(r.out().contains("!["), "no charts without --charts");
  }

  @Test
  void unreadableRecordsFailNamingTheFile() throws Exception {
    Path parity = docsPerf().resolve("2026-11-29-parity.json");
    CliRun r = run("compare", parity.toString());
    assertEquals(1, r.exit());
    assertTrue(r.err().contains("2026-11-29-parity.json") && r.err().contains("not a record"), r.err());

    Path dir = tmp.resolve("broken");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("x.json"), "{\"record\": \"kvasir-peer/1\", \"topic\": \"t\"}");
    CliRun b = run("report", dir.toString());
    assertEquals(1, b.exit());
    assertTrue(b.err().contains("x.json") && b.err().contains("'output_tokens_per_s'"), b.err());
    assertFalse(Files.exists(dir.resolve("report.md")));

    assertEquals(2, run("report", tmp.resolve("missing").toString()).exit());
    assertEquals(2, run("compare").exit(), "a record is required");
  }
}
