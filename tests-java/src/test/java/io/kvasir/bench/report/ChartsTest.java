package io.kvasir.bench.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;

/** Every chart kind renders headless to well-formed SVG whose legend names the expected series. */
class ChartsTest {
  @TempDir
  Path tmp;

  /** The SVG parsed as XML (its DOCTYPE's DTD not fetched), and the text of its {@code <text>} elements. */
  static List<String> svgTexts(Path file) throws Exception {
    String svg = Files.readString(file);
    assertTrue(svg.length() > 1000, file + " is " + svg.length() + " characters");
    DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
    f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false);
    f.setNamespaceAware(true);
    Document doc = f.newDocumentBuilder().parse(new InputSource(new StringReader(svg)));
    assertEquals("svg", doc.getDocumentElement().getLocalName());
    NodeList texts = doc.getElementsByTagNameNS("http://www.w3.org/2000/svg", "text");
    List<String> out = new ArrayList<>();
    for (int i = 0; i < texts.getLength(); ++i) {
      out.add(texts.item(i).getTextContent());
    }
    return out;
  }

  private static Charts.Chart chart(List<Charts.Chart> charts, String prefix) {
    return charts.stream().filter(c -> c.file().getFileName().toString().startsWith(prefix)).findFirst()
        .orElseThrow(() -> new AssertionError("no chart " + prefix + " in " + charts));
  }

  @Test
  void everyKindRenders() throws Exception {
    Path in = tmp.resolve("in");
    ReportFixtures.write(in, "full-r1.json", ReportFixtures.serve("full", 1.0, 100, 30));
    ReportFixtures.write(in, "full-r2.json", ReportFixtures.serve("full", 2.0, 180, 40));
    ReportFixtures.write(in, "quest-r1.json", ReportFixtures.serve("quest:k=64", 1.0, 110, 25));
    ObjectNode withMatrix = ReportFixtures.serve("quest:k=64", 2.0, 200, 35);
    ArrayNode m = ((ObjectNode) withMatrix.get("results")).putArray("matrix");
    for (int ctx : new int[] {1024, 4096, 16384}) {
      m.addObject().put("phase", "tg").put("context", ctx).put("batch", 1).put("tokens_per_s", 1e6 / ctx);
    }
    ReportFixtures.write(in, "quest-r2.json", withMatrix);
    ReportFixtures.write(in, "e-full.json", ReportFixtures.eval("full", null, "passkey", 1.0, "niah", 0.8));
    ReportFixtures.write(in, "e-q16.json", ReportFixtures.eval("quest:k=16", 256.0, "passkey", 0.9, "niah", 0.6));
    ReportFixtures.write(in, "e-q4.json", ReportFixtures.eval("quest:k=4", 64.0, "passkey", 0.7, "niah", 0.2));
    ReportFixtures.write(in, "kernels.json", ReportFixtures.kernelLines());
    RunSet set = RunSet.load(List.of(in));
    Path dir = tmp.resolve("charts");
    List<Charts.Chart> charts = Charts.renderAll(set, dir);

    Charts.Chart rate = chart(charts, "throughput-vs-rate-");
    assertEquals(List.of("full", "quest:k=64"), rate.series());
    List<String> texts = svgTexts(rate.file());
    assertTrue(texts.containsAll(List.of("full", "quest:k=64", "request rate (requests/s)")), texts.toString());
    assertTrue(texts.stream().anyMatch(t -> t.startsWith("Output throughput vs request rate")), texts.toString());

    // One CDF per workload (each rate is its own workload): at rate 1, both policies.
    Charts.Chart ttft = charts.stream().filter(c -> c.title().startsWith("TTFT CDF") && c.title().contains("Poisson 1 "))
        .findFirst().orElseThrow();
    assertEquals(List.of("full", "quest:k=64"), ttft.series());
    assertTrue(svgTexts(ttft.file()).containsAll(List.of("full", "quest:k=64", "TTFT (ms)", "fraction of requests")));
    assertTrue(charts.stream().anyMatch(c -> c.title().startsWith("TPOT CDF")));

    Charts.Chart acc = chart(charts, "accuracy-vs-budget-");
    assertEquals(List.of("passkey", "niah"), acc.series());
    List<String> accTexts = svgTexts(acc.file());
    assertTrue(accTexts.containsAll(List.of("passkey", "niah", "quest:k=4 (64 tokens)", "quest:k=16 (256 tokens)",
        "full")), accTexts.toString());
    // Smallest budget first.
    assertTrue(accTexts.indexOf("quest:k=4 (64 tokens)") < accTexts.indexOf("quest:k=16 (256 tokens)"));

    Charts.Chart speed = chart(charts, "tg-vs-context-");
    assertEquals(List.of("quest:k=64"), speed.series());
    assertTrue(svgTexts(speed.file()).containsAll(List.of("context (tokens, log scale)", "generated tokens/s",
        "quest:k=64")));
    assertTrue(charts.stream().noneMatch(c -> c.file().getFileName().toString().startsWith("pp-vs-context")),
        "no pp rows, no pp chart");

    Charts.Chart roof = chart(charts, "roofline-vs-context-kernels");
    assertEquals(List.of("paged_decode tc", "paged_decode cc"), roof.series());
    assertTrue(svgTexts(roof.file()).containsAll(List.of("paged_decode tc", "paged_decode cc",
        "% of the named roofline")));

    for (Charts.Chart c : charts) {
      assertTrue(Files.size(c.file()) > 0 && c.file().getParent().equals(dir), c.toString());
    }
  }

  @Test
  void cdfIsAStepFunctionAndCapped() {
    var s = Charts.cdf("x", List.of(30.0, 10.0, 20.0));
    // (10,0) (10,1/3) (20,1/3) (20,2/3) (30,2/3) (30,1)
    assertEquals(6, s.getItemCount());
    assertEquals(10.0, s.getX(0).doubleValue());
    assertEquals(0.0, s.getY(0).doubleValue());
    assertEquals(1.0 / 3, s.getY(1).doubleValue(), 1e-12);
    assertEquals(30.0, s.getX(5).doubleValue());
    assertEquals(1.0, s.getY(5).doubleValue());
    List<Double> many = new ArrayList<>();
    for (int i = 0; i < 10_000; ++i) {
      many.add((double) i);
    }
    var big = Charts.cdf("y", many);
    assertEquals(2 * Charts.CDF_POINTS, big.getItemCount());
    assertEquals(9999.0, big.getX(big.getItemCount() - 1).doubleValue());
    assertEquals(1.0, big.getY(big.getItemCount() - 1).doubleValue());
  }

  @Test
  void sameRecordsSameBytes() throws Exception {
    Path in = tmp.resolve("in");
    ReportFixtures.write(in, "k.json", ReportFixtures.kernelLines());
    RunSet set = RunSet.load(List.of(in));
    Path a = Charts.renderAll(set, tmp.resolve("a")).get(0).file();
    Path b = Charts.renderAll(set, tmp.resolve("b")).get(0).file();
    assertEquals(Files.readString(a), Files.readString(b));
  }
}
