package io.kvasir.bench.report;

import static io.kvasir.bench.report.ReportFixtures.docsPerf;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Each record format read by its fields, from the committed records and from hand-made ones; malformed files named. */
class RecordLoaderTest {
  @TempDir
  Path tmp;

  private static <T extends Run> T only(Path file, Class<T> type) {
    List<Run> runs = RecordLoader.load(file);
    assertEquals(1, runs.size(), file.toString());
    return assertInstanceOf(type, runs.get(0));
  }

  @Test
  void committedServingRecord() {
    ServeRun r = only(docsPerf().resolve("2026-11-29-serve-online-r2.43.json"), ServeRun.class);
    assertEquals("full", r.policy());
    assertEquals("synthetic:llama3-8b", r.model());
    assertEquals(2.43, r.workload().rate());
    assertEquals(73, r.workload().requests());
    assertEquals("56dce19be1d2c5bb9f25d1cea948a40ee51aed1b", r.info().commit());
    assertTrue(r.info().device().startsWith("NVIDIA H200"));
    assertEquals(654.1430861283308, r.figure(ServeRecords.OUTPUT_TOKENS_PER_S).value(), 0);
    assertEquals(630.25911812, r.figure("TTFT p99 (ms)").value(), 0);
    assertEquals(100 * 0.3684633739424974, r.figure(ServeRecords.FRACTION_OF_ROOFLINE).value(), 1e-12);
    assertEquals(73, r.ttftMs().size());
    assertEquals(210.649, r.ttftMs().get(0), 0);
    // The record has no per-request TPOT: (latency - TTFT) / (output tokens - 1), first request.
    assertEquals((3042.859 - 210.649) / 255, r.tpotMs().get(0), 1e-9);
    assertTrue(r.matrix().isEmpty());
  }

  @Test
  void committedOfflineRecordIsOffline() {
    ServeRun r = only(docsPerf().resolve("2026-11-29-serve-subsample.json"), ServeRun.class);
    assertTrue(r.workload().offline());
    assertEquals(302862L, r.workload().promptTokens());
  }

  @Test
  void committedPeerRecord() {
    PeerRun p = only(docsPerf().resolve("2026-11-29-serve-subsample-hf.json"), PeerRun.class);
    assertEquals("transformers 5.17.0", p.peer());
    assertEquals(64, p.requests());
    assertEquals(16384L, p.outputTokens());
    assertEquals(126.82181196337993, Tables.value(p.figures(), ServeRecords.OUTPUT_TOKENS_PER_S), 0);
    ServeRun sub = only(docsPerf().resolve("2026-11-29-serve-subsample.json"), ServeRun.class);
    assertTrue(ServeGroups.matches(p, sub), "the peer ran the subsample's requests");
    ServeRun offline = only(docsPerf().resolve("2026-11-29-serve-offline.json"), ServeRun.class);
    assertTrue(!ServeGroups.matches(p, offline), "not the 512-request run's");
  }

  @Test
  void committedEvalRecords() {
    EvalRun quest = only(docsPerf().resolve("2026-11-29-quest-accuracy-cpu-quest_k_4.json"), EvalRun.class);
    assertEquals("quest:k=4", quest.policy());
    assertEquals(2, quest.cells().size());
    assertEquals("niah_multikey", quest.cells().get(1).task());
    assertEquals(0.20833333333333334, quest.cells().get(1).accuracy(), 0);
    assertEquals(24, quest.cells().get(1).count());
    // A wrapper of runs: each run, the wrapper's command filling what a run lacks.
    List<Run> runs = RecordLoader.load(docsPerf().resolve("2026-11-29-refeval-cpu.json"));
    assertEquals(4, runs.size());
    EvalRun first = assertInstanceOf(EvalRun.class, runs.get(0));
    assertEquals("arithmetic", first.cells().get(0).task());
    assertEquals(0.915, first.cells().get(0).accuracy(), 0);
    assertTrue(first.info().command().contains("MODEL_CARD"));
  }

  @Test
  void committedKernelLinesAndFigures() {
    KernelRun paged = only(docsPerf().resolve("2026-11-29-paged-decode.json"), KernelRun.class);
    assertEquals(30, paged.rows().size());
    KernelRun.Row r0 = paged.rows().get(0);
    assertEquals("paged_decode", r0.op());
    assertEquals("auto", r0.variant());
    assertEquals(1024, r0.context());
    assertEquals(1, r0.batch());
    assertEquals(0.014129, r0.medianMs(), 0);
    assertEquals(296.86, r0.achieved(), 1e-9);
    assertEquals("GB/s", r0.achievedUnit());
    assertEquals("read", r0.roofline());
    assertEquals(4475.9, r0.ceiling(), 1e-9);
    assertEquals(0.066324, r0.fraction(), 0);

    KernelRun ops = only(docsPerf().resolve("2026-11-29-kernels.json"), KernelRun.class);
    assertEquals("0a338528eded604571432bc3266457dd6e27d323", ops.info().commit());
    KernelRun.Row merge = ops.rows().get(0);
    assertEquals("copy", merge.roofline());
    assertEquals(4246.0, merge.ceiling(), 1e-9); // from the record's ceilings
    assertEquals(Boolean.FALSE, merge.goalMet());
    KernelRun.Row prefill = ops.rows().get(ops.rows().size() - 1);
    assertEquals("bf16 compute", prefill.roofline());
    assertEquals("TFLOP/s", prefill.achievedUnit());
    assertNull(prefill.ceiling(), "no GEMM ceiling was measured");
    assertNull(prefill.fraction());
    assertEquals(32768, ops.rows().stream().filter(r -> r.op().equals("attention_decode")).findFirst().orElseThrow()
        .context(), "context from params len=/kv_len=");
  }

  @Test
  void matrixRowsAreRead() throws Exception {
    ObjectNode rec = ReportFixtures.serve("full", null, 100, 30);
    var m = ((ObjectNode) rec.get("results")).putArray("matrix");
    m.addObject().put("phase", "pp").put("context", 4096).put("batch", 1).put("tokens_per_s", 9000.5);
    m.addObject().put("test", "tg128").put("ctx", 4096).put("tokens_per_s", 80.25);
    ServeRun r = only(ReportFixtures.write(tmp, "m.json", rec), ServeRun.class);
    assertEquals(List.of(new ServeRun.MatrixRow("pp", 4096, 1, 9000.5), new ServeRun.MatrixRow("tg", 4096, 1, 80.25)),
        r.matrix());
  }

  @Test
  void runRecordFieldsAreFigures() throws Exception {
    // The fields kvasir-bench run adds (docs/benchmarks.md, "The record").
    ObjectNode rec = ReportFixtures.serve("quest:k=64", 2.0, 100, 30);
    ObjectNode res = (ObjectNode) rec.get("results");
    ObjectNode goodput = res.putObject("goodput");
    goodput.putObject("slo").put("ttft_ms", 2000).put("tpot_ms", 100);
    goodput.put("requests_met", 2).put("fraction_met", 2 / 3.0).put("requests_per_s", 0.8);
    res.putObject("kv").put("peak_device_bytes", 3 << 20).put("page_tokens", 16);
    res.putObject("policy_counters").put("pages_recalled", 99);
    ObjectNode w = (ObjectNode) rec.get("workload");
    w.put("name", "online").putNull("output_tokens").put("output_min", 4).put("output_max", 6)
        .put("output_tokens_total", 15);
    ((ObjectNode) rec.get("samples")).putArray("tpot_ms").add(9.0).addNull().add(7.0);
    ServeRun r = only(ReportFixtures.write(tmp, "g.json", rec), ServeRun.class);
    assertEquals(0.8, r.figure("goodput (requests/s, SLO ttft_ms <= 2000, tpot_ms <= 100)").value());
    assertEquals(100 * 2 / 3.0, r.figure("requests meeting the SLOs (%)").value(), 1e-12);
    assertEquals(3.0, r.figure("KV: peak_device (MiB)").value());
    assertEquals(16, r.figure("KV: page_tokens").value());
    assertEquals(99, r.figure("policy: pages_recalled").value());
    assertEquals(List.of(9.0, 7.0), r.tpotMs(), "a request of one token has no TPOT");
    assertEquals("online: 3 requests, prompts 100-200 tokens, 4-6 out, Poisson 2 requests/s", r.workload().describe());
    assertEquals(15L, ServeGroups.outputTotal(r.workload()));
  }

  @Test
  void ppTgRecordNeedsNoRequestFigures() throws Exception {
    ObjectNode rec = ReportFixtures.JSON.createObjectNode();
    rec.put("record", "kvasir-perf/1").put("topic", "pp-tg").put("date", "2026-11-30");
    rec.putObject("configuration").put("model", "m").put("policy", "full");
    rec.putObject("workload").put("name", "pp-tg").put("seed", 0).putNull("rate");
    var m = rec.putObject("results").putArray("matrix");
    m.addObject().put("test", "pp").put("context", 512).put("batch", 1).put("tokens", 512).put("seconds", 0.5)
        .put("tokens_per_s", 1024.0);
    m.addObject().put("test", "tg").put("context", 2048).put("batch", 8).put("tokens", 512).put("seconds", 2.0)
        .put("tokens_per_s", 256.0);
    ServeRun r = only(ReportFixtures.write(tmp, "pptg.json", rec), ServeRun.class);
    assertEquals(List.of(new ServeRun.MatrixRow("pp", 512, 1, 1024.0), new ServeRun.MatrixRow("tg", 2048, 8, 256.0)),
        r.matrix());
    assertTrue(r.ttftMs().isEmpty());
    // A serve record without its request figures is still refused.
    rec.put("topic", "serve");
    Path f = ReportFixtures.write(tmp, "serve-no-figures.json", rec);
    RecordException e = assertThrows(RecordException.class, () -> RecordLoader.load(f));
    assertTrue(e.getMessage().contains("'results.request_throughput_per_s'"), e.getMessage());
  }

  @Test
  void missingFieldNamesFileAndField() throws Exception {
    ObjectNode rec = ReportFixtures.serve("full", null, 100, 30);
    ((ObjectNode) rec.get("results")).remove("ttft_ms");
    Path f = ReportFixtures.write(tmp, "broken-serve.json", rec);
    RecordException e = assertThrows(RecordException.class, () -> RecordLoader.load(f));
    assertTrue(e.getMessage().contains("broken-serve.json") && e.getMessage().contains("'results.ttft_ms'"),
        e.getMessage());
    assertEquals(f, e.file());
  }

  @Test
  void wrongTypeNamesTheField() throws Exception {
    ObjectNode rec = ReportFixtures.serve("full", null, 100, 30);
    ((ObjectNode) rec.get("results")).put("output_tokens_per_s", "fast");
    Path f = ReportFixtures.write(tmp, "typed.json", rec);
    RecordException e = assertThrows(RecordException.class, () -> RecordLoader.load(f));
    assertTrue(e.getMessage().contains("typed.json") && e.getMessage().contains("'results.output_tokens_per_s'")
        && e.getMessage().contains("expected a number"), e.getMessage());
  }

  @Test
  void badKernelLineNamesTheLine() throws Exception {
    String lines = ReportFixtures.kernelLines().replaceFirst("(?s)(\\{[^\n]*\n)\\{[^\n]*\n", "$1{\"op\": \"x\"}\n");
    Path f = ReportFixtures.write(tmp, "k.json", lines);
    RecordException e = assertThrows(RecordException.class, () -> RecordLoader.load(f));
    assertTrue(e.getMessage().contains("k.json") && e.getMessage().contains("'line 2.median_ms'"), e.getMessage());

    Path g = ReportFixtures.write(tmp, "k2.json", ReportFixtures.kernelLines() + "{not json\n");
    RecordException e2 = assertThrows(RecordException.class, () -> RecordLoader.load(g));
    assertTrue(e2.getMessage().contains("k2.json") && e2.getMessage().contains("line 5: not JSON"), e2.getMessage());
  }

  @Test
  void evalAccuracyOutOfRangeIsRefused() throws Exception {
    Path f = ReportFixtures.write(tmp, "acc.json", ReportFixtures.eval("full", null, "passkey", 1.5));
    RecordException e = assertThrows(RecordException.class, () -> RecordLoader.load(f));
    assertTrue(e.getMessage().contains("acc.json") && e.getMessage().contains("'results[0].accuracy'"),
        e.getMessage());
  }

  @Test
  void notJsonAndUnknownFormatsAreRefusedByName() throws Exception {
    Path bad = ReportFixtures.write(tmp, "bad.json", "{\"record\": \"kvasir-perf/1\",\n  \"topic\": }");
    RecordException e = assertThrows(RecordException.class, () -> RecordLoader.load(bad));
    assertTrue(e.getMessage().startsWith(bad + ": not JSON") && e.getMessage().contains("line 2"), e.getMessage());

    Path unknown = ReportFixtures.write(tmp, "u.json", "{\"record\": \"kvasir-foo/9\"}");
    UnrecognizedRecordException u = assertThrows(UnrecognizedRecordException.class,
        () -> RecordLoader.load(unknown));
    assertTrue(u.getMessage().contains("u.json") && u.getMessage().contains("kvasir-foo/9"), u.getMessage());

    Path parity = docsPerf().resolve("2026-11-29-parity.json");
    assertThrows(UnrecognizedRecordException.class, () -> RecordLoader.load(parity));
  }

  @Test
  void directoriesSkipOtherFilesButNamedFilesMustBeRecords() throws Exception {
    ReportFixtures.write(tmp, "a-serve.json", ReportFixtures.serve("full", null, 100, 30));
    ReportFixtures.write(tmp, "notes.json", "{\"hello\": 1}");
    ReportFixtures.write(tmp, RunSet.INDEX, "{\"records\": [\"a-serve.json\"]}");
    ReportFixtures.write(tmp, "ignored.txt", "not read");
    RunSet set = RunSet.load(List.of(tmp));
    assertEquals(1, set.runs().size());
    assertEquals(List.of("notes.json"),
        set.skipped().stream().map(s -> s.file().getFileName().toString()).toList());
    assertThrows(UnrecognizedRecordException.class, () -> RunSet.load(List.of(tmp.resolve("notes.json"))));
    RecordException missing = assertThrows(RecordException.class,
        () -> RunSet.load(List.of(tmp.resolve("nope.json"))));
    assertTrue(missing.getMessage().contains("nope.json"));
  }

  @Test
  void wholeDocsPerfLoads() {
    RunSet set = RunSet.load(List.of(ReportFixtures.committedDocsPerf()));
    assertTrue(set.of(ServeRun.class).size() >= 6 && set.of(PeerRun.class).size() >= 1, "6 serving records, 1 peer");
    assertTrue(set.of(KernelRun.class).size() >= 8, "kernel files: " + set.of(KernelRun.class).size());
    assertTrue(set.of(EvalRun.class).size() >= 6);
  }

  // A fidelity record (kvasir-bench fidelity) reads into its rows, and the report gives it a table.
  @Test
  void fidelityRecordsReadAndRender() throws Exception {
    Path f = tmp.resolve("fidelity.json");
    java.nio.file.Files.writeString(f, """
        {"record": "kvasir-perf/1", "topic": "fidelity", "date": "2026-11-29", "git_commit": "abc1234",
         "device": "cpu", "command": "kvasir-bench fidelity --policies quest:k=4",
         "configuration": {"model": "tiny", "baseline": "full", "tokens": 16},
         "results": [
           {"policy": "quest:k=4", "group": "all", "prompts": 3, "steps": 48,
            "kl_nats": {"mean": 0.25, "p50": 0.125, "p90": 0.5, "max": 2.0},
            "top1_agreement": 0.875, "token_agreement": 0.5,
            "first_divergence": {"median": 7.0, "min": 2, "diverged_prompts": 3}}]}
        """);
    FidelityRun run = assertInstanceOf(FidelityRun.class, RecordLoader.load(f).get(0));
    assertEquals("fidelity", run.kind());
    assertEquals("full", run.baseline());
    assertEquals(16, run.tokens());
    FidelityRun.Row r = run.rows().get(0);
    assertEquals(0.25, r.klMean());
    assertEquals(0.875, r.top1Agreement());
    assertEquals(2.0, r.firstDivergenceMin());
    String md = MarkdownReport.render(RunSet.load(List.of(f)), "t", null, null, List.of(), null);
    assertTrue(md.contains("## Fidelity against full KV"), md);
    assertTrue(md.contains("| quest:k=4 | all | 3 | 48 |"), md);
    assertTrue(md.contains("| 0.8750 | 0.5000 |"), md);
    // A record missing a figure names the field.
    java.nio.file.Files.writeString(f, java.nio.file.Files.readString(f).replace("\"top1_agreement\": 0.875, ", ""));
    RecordException e = assertThrows(RecordException.class, () -> RecordLoader.load(f));
    assertTrue(e.getMessage().contains("top1_agreement"), e.getMessage());
  }
}
