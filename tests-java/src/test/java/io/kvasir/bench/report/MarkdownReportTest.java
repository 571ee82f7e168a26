package io.kvasir.bench.report;

import static io.kvasir.bench.report.ReportFixtures.assertWellFormed;
import static io.kvasir.bench.report.ReportFixtures.row;
import static io.kvasir.bench.report.ReportFixtures.tables;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The tables: well-formed markdown, numbers and ratios as worked out by hand, captions that say what was matched. */
class MarkdownReportTest {
  @TempDir
  Path tmp;

  private RunSet twoPoliciesAndAPeer() throws Exception {
    ReportFixtures.write(tmp, "a-full.json", ReportFixtures.serve("full", null, 1000, 200));
    ReportFixtures.write(tmp, "b-quest.json", ReportFixtures.serve("quest:k=64", null, 1250, 150));
    // 3 requests of 5 tokens on seed 7 with 450 prompt tokens: the same requests.
    ReportFixtures.write(tmp, "c-peer.json", ReportFixtures.peer(3, 450, 15, 250));
    // Another workload's peer: no match.
    ReportFixtures.write(tmp, "d-peer.json", ReportFixtures.peer(64, 450, 320, 99));
    return RunSet.load(List.of(tmp));
  }

  @Test
  void formatting() {
    assertEquals("512", Fmt.num(512.0));
    assertEquals("12977", Fmt.num(12976.9065));
    assertEquals("28.6", Fmt.num(28.5687));
    assertEquals("8.20", Fmt.num(8.200223));
    assertEquals("0.495", Fmt.num(0.49539770));
    assertEquals("0.0141", Fmt.num(0.014129));
    assertEquals("1.96e-04", Fmt.num(0.000196));
    assertEquals("—", Fmt.num(Double.NaN));
    assertEquals("1.25x", Fmt.ratio(1250.0, 1000.0));
    assertEquals(null, Fmt.ratio(1.0, 0.0));
    assertEquals("-0.250", Fmt.diff(0.75, 1.0));
    assertEquals("6.6%", Fmt.percent(0.066324));
    assertEquals("0123456789ab", Fmt.commit("0123456789abcdef"));
  }

  @Test
  void markdownTableEscapesAndChecksWidths() {
    MarkdownTable t = MarkdownTable.labelled(List.of("figure", "a|b"));
    t.row("x", null);
    String md = t.render();
    assertEquals("| figure | a\\|b |\n|---|---:|\n| x | — |\n", md);
    assertThrows(IllegalArgumentException.class, () -> t.row("only one"));
  }

  @Test
  void servingTableSideBySideWithRatiosAndMatchedPeer() throws Exception {
    RunSet set = twoPoliciesAndAPeer();
    String md = MarkdownReport.render(set, "T", null, null, List.of(), null);
    List<List<List<String>>> ts = tables(md);
    ts.forEach(ReportFixtures::assertWellFormed);
    List<List<String>> serve = ts.get(0);
    assertEquals(List.of("figure", "full", "quest:k=64", "transformers 9.9.9"), serve.get(0));
    assertEquals(List.of("output tokens/s", "1000", "1250 (1.25x)", "250 (0.25x)"), row(serve, "output tokens/s"));
    assertEquals(List.of("TTFT p99 (ms)", "200", "150 (0.75x)", "—"), row(serve, "TTFT p99 (ms)"));
    assertEquals(List.of("total tokens/s", "10000", "12500 (1.25x)", "1250 (0.13x)"), row(serve, "total tokens/s"));
    assertEquals(List.of("prefix cache hit rate (%)", "25", "25 (1.00x)", "—"), row(serve, "prefix cache hit rate (%)"));
    assertEquals(List.of("fraction of roofline (%)", "50", "50 (1.00x)", "—"), row(serve, "fraction of roofline (%)"));
    assertTrue(md.contains("peers matched on workload seed 7, 3 requests, 450 prompt tokens, 15 output tokens, all at once"),
        md);
    assertTrue(md.contains("against the baseline column `full`"), md);
    // The unmatched peer gets a table of its own, which says so.
    List<List<String>> lone = ts.get(1);
    assertEquals(List.of("figure", "transformers 9.9.9"), lone.get(0));
    assertTrue(md.contains("The peer is unmatched"), md);
  }

  @Test
  void baselineByName() throws Exception {
    RunSet set = twoPoliciesAndAPeer();
    List<List<String>> serve = tables(MarkdownReport.render(set, "T", null, "quest:k=64", List.of(), null)).get(0);
    assertEquals(List.of("output tokens/s", "1000 (0.80x)", "1250", "250 (0.20x)"), row(serve, "output tokens/s"));
    String md = MarkdownReport.render(set, "T", null, "h2o", List.of(), null);
    assertTrue(md.contains("Baseline `h2o` is not a column here"), md);
    assertEquals(List.of("output tokens/s", "1000", "1250 (1.25x)", "250 (0.25x)"),
        row(tables(md).get(0), "output tokens/s"));
  }

  @Test
  void prefixCacheOffIsItsOwnColumn() throws Exception {
    var off = ReportFixtures.serve("full", 2.0, 900, 400);
    ((com.fasterxml.jackson.databind.node.ObjectNode) off.get("configuration")).put("prefix_cache", false);
    ReportFixtures.write(tmp, "on.json", ReportFixtures.serve("full", 2.0, 1000, 200));
    ReportFixtures.write(tmp, "off.json", off);
    List<List<String>> t = tables(MarkdownReport.render(RunSet.load(List.of(tmp)), "T", null, null, List.of(), null))
        .get(0);
    assertEquals(List.of("figure", "full (no prefix cache)", "full"), t.get(0));
    assertEquals(List.of("TTFT p99 (ms)", "400", "200 (0.50x)"), row(t, "TTFT p99 (ms)"));
  }

  @Test
  void accuracyTableWithDifferencesAgainstFull() throws Exception {
    ReportFixtures.write(tmp, "e1.json", ReportFixtures.eval("full", null, "passkey", 1.0, "niah", 0.75));
    ReportFixtures.write(tmp, "e2.json", ReportFixtures.eval("quest:k=4", 64.0, "passkey", 0.95, "niah", 0.5));
    String md = MarkdownReport.render(RunSet.load(List.of(tmp)), "T", null, "full", List.of(), null);
    List<List<String>> t = tables(md).get(0);
    assertWellFormed(t);
    assertEquals(List.of("task @ length (tokens)", "full", "quest:k=4"), t.get(0));
    assertEquals(List.of("passkey @ 2048", "1.000 (n=20)", "0.950 (n=20, -0.050)"), row(t, "passkey @ 2048"));
    assertEquals(List.of("niah @ 2048", "0.750 (n=20)", "0.500 (n=20, -0.250)"), row(t, "niah @ 2048"));
  }

  @Test
  void kernelTableNamesEachRoofline() throws Exception {
    ReportFixtures.write(tmp, "k.json", ReportFixtures.kernelLines());
    String md = MarkdownReport.render(RunSet.load(List.of(tmp)), "T", null, null, List.of(), null);
    List<List<String>> t = tables(md).get(0);
    assertWellFormed(t);
    assertEquals(List.of("op", "variant", "shape", "median ms", "achieved", "roofline", "% of roofline", "goal met"),
        t.get(0));
    // tc at ctx 8192: 2000 x 1.5 = 3000 GB/s of a 4000 GB/s read roofline.
    assertEquals(List.of("paged_decode", "tc", "batch=1,ctx=8192,hq=32,hkv=8,d=128", "0.0500", "3000 GB/s",
        "read (4000 GB/s)", "75.0%", "—"), t.get(3));
  }

  @Test
  void runsTableNamesCommandDeviceDateCommit() throws Exception {
    RunSet set = twoPoliciesAndAPeer();
    String md = MarkdownReport.render(set, "T", null, null, List.of(), null);
    List<List<String>> runs = tables(md).get(tables(md).size() - 1);
    assertEquals(List.of("file", "kind", "what", "command", "device", "date", "commit"), runs.get(0));
    List<String> a = row(runs, "a-full.json");
    assertEquals("`kvasir-bench serve --policy full`", a.get(3));
    assertEquals("Test GPU, 1 MiB", a.get(4));
    assertEquals("2026-11-30", a.get(5));
    assertEquals("0123456789ab", a.get(6));
    assertTrue(md.contains("Devices: Test GPU, 1 MiB; Test GPU. Dates: 2026-11-30. Commits: 0123456789ab."), md);
  }
}
