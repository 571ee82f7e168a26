package io.kvasir.bench.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Paint;
import java.awt.Rectangle;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.text.DecimalFormatSymbols;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.NumberTickUnit;
import org.jfree.chart.plot.DefaultDrawingSupplier;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.category.LineAndShapeRenderer;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.chart.text.TextUtils;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;
import org.jfree.svg.SVGGraphics2D;

/**
 * The charts of a {@link RunSet}, drawn by JFreeChart headless into SVG files:
 * <ul>
 *   <li>output throughput vs request rate, one line per policy, for each sweep of online runs;</li>
 *   <li>TTFT and TPOT CDFs from the per-request samples, one curve per policy, for each workload;</li>
 *   <li>accuracy vs KV budget, one line per task, for each model evaluated under several policies;</li>
 *   <li>speed vs context length: pp and tg of the matrix (tokens/s, a chart each), kernel figures (% of roofline).</li>
 * </ul>
 */
public final class Charts {
  static {
    // Before the first AWT class loads: no display on build machines or the GPU host.
    System.setProperty("java.awt.headless", "true");
    // Rotated labels (the y axis) as SVG text, not glyph outlines: searchable and a tenth of the bytes.
    TextUtils.setUseDrawRotatedStringWorkaround(false);
  }

  static final int WIDTH = 800;
  static final int HEIGHT = 500;
  /** Most steps drawn per CDF curve. */
  static final int CDF_POINTS = 256;
  /** Tableau's ten colours: distinguishable, readable on white (JFreeChart's default includes yellow). */
  private static final Paint[] PALETTE = {new Color(0x4e79a7), new Color(0xf28e2b), new Color(0xe15759),
      new Color(0x76b7b2), new Color(0x59a14f), new Color(0xedc948), new Color(0xb07aa1), new Color(0xff9da7),
      new Color(0x9c755f), new Color(0xbab0ac)};
  private static final Pattern SPEC_NUMBER = Pattern.compile("[:=,]([a-z_]*)=?([0-9]+(?:\\.[0-9]+)?)");

  private Charts() {}

  /**
   * A chart written to a file.
   *
   * @param section {@code serve}, {@code matrix}, {@code eval} or {@code kernels}: where a report places it
   * @param series  the legend's entries
   */
  public record Chart(Path file, String title, String section, List<String> series) {}

  /** Renders every chart the runs support into {@code dir} (created), and returns them in report order. */
  public static List<Chart> renderAll(RunSet set, Path dir) throws IOException {
    Files.createDirectories(dir);
    List<Chart> out = new ArrayList<>();
    Set<String> names = new HashSet<>();
    List<ServeGroups> groups = ServeGroups.of(set.of(ServeRun.class), List.of());
    throughputVsRate(set.of(ServeRun.class), dir, names, out);
    for (ServeGroups g : groups) {
      latencyCdf(g, true, dir, names, out);
      latencyCdf(g, false, dir, names, out);
      matrix(g, dir, names, out);
    }
    accuracyVsBudget(set.of(EvalRun.class), dir, names, out);
    for (KernelRun k : set.of(KernelRun.class)) {
      kernelsVsContext(k, dir, names, out);
    }
    return out;
  }

  private static void throughputVsRate(List<ServeRun> runs, Path dir, Set<String> names, List<Chart> out)
      throws IOException {
    Map<String, List<ServeRun>> sweeps = new LinkedHashMap<>();
    for (ServeRun r : runs) {
      if (!r.workload().offline()) {
        sweeps.computeIfAbsent(r.workload().sweepKey(r.model()), k -> new ArrayList<>()).add(r);
      }
    }
    for (List<ServeRun> sweep : sweeps.values()) {
      Map<String, XYSeries> series = new LinkedHashMap<>();
      for (ServeRun r : sweep) {
        Figure f = r.figure(ServeRecords.OUTPUT_TOKENS_PER_S);
        series.computeIfAbsent(r.label(), l -> new XYSeries(l, true, true)).add((double) r.workload().rate(),
            f.value());
      }
      XYSeriesCollection data = new XYSeriesCollection();
      series.values().forEach(data::addSeries);
      ServeRun first = sweep.get(0);
      String title = "Output throughput vs request rate: " + first.workload().describeSweep();
      JFreeChart chart = ChartFactory.createXYLineChart(title, "request rate (requests/s)", "output tokens/s", data,
          PlotOrientation.VERTICAL, true, false, false);
      lines(chart, true);
      out.add(write(chart, dir, names, "throughput-vs-rate-" + first.workload().describeSweep(), "serve",
          List.copyOf(series.keySet())));
    }
  }

  private static void latencyCdf(ServeGroups g, boolean ttft, Path dir, Set<String> names, List<Chart> out)
      throws IOException {
    List<String> labels = g.labels();
    XYSeriesCollection data = new XYSeriesCollection();
    List<String> legend = new ArrayList<>();
    for (int i = 0; i < g.runs().size(); ++i) {
      List<Double> samples = ttft ? g.runs().get(i).ttftMs() : g.runs().get(i).tpotMs();
      if (samples.isEmpty()) {
        continue;
      }
      data.addSeries(cdf(labels.get(i), samples));
      legend.add(labels.get(i));
    }
    if (legend.isEmpty()) {
      return;
    }
    String what = ttft ? "TTFT" : "TPOT";
    String title = what + " CDF: " + g.title();
    JFreeChart chart = ChartFactory.createXYLineChart(title, what + " (ms)", "fraction of requests", data,
        PlotOrientation.VERTICAL, true, false, false);
    lines(chart, false);
    out.add(write(chart, dir, names, what.toLowerCase(Locale.ROOT) + "-cdf-" + g.title(), "serve", legend));
  }

  /**
   * The empirical CDF as a step line: at each sample (sorted) the fraction of samples at or below
   * it. Above {@link #CDF_POINTS} samples, that many evenly spaced ranks, so files stay small.
   */
  static XYSeries cdf(String name, List<Double> samples) {
    double[] sorted = samples.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    int n = sorted.length;
    int m = Math.min(n, CDF_POINTS);
    XYSeries s = new XYSeries(name, false, true);
    double below = 0;
    for (int j = 0; j < m; ++j) {
      int k = (int) Math.round((j + 1) * (double) n / m) - 1;
      double at = (k + 1) / (double) n;
      s.add(sorted[k], below);
      s.add(sorted[k], at);
      below = at;
    }
    return s;
  }

  /** One chart per test (pp, tg): tokens/s against context, a line per policy (and batch). */
  private static void matrix(ServeGroups g, Path dir, Set<String> names, List<Chart> out) throws IOException {
    List<ServeRun> runs = g.runs().stream().filter(r -> !r.matrix().isEmpty()).toList();
    if (runs.isEmpty()) {
      return;
    }
    List<String> labels = ServeGroups.unique(runs.stream().map(ServeRun::label).toList(),
        i -> runs.get(i).policyResolved(), i -> runs.get(i).fileName());
    for (String test : List.of("pp", "tg")) {
      Map<String, XYSeries> series = new LinkedHashMap<>();
      for (int i = 0; i < runs.size(); ++i) {
        long batches = runs.get(i).matrix().stream().filter(m -> m.phase().equals(test))
            .map(ServeRun.MatrixRow::batch).distinct().count();
        for (ServeRun.MatrixRow m : runs.get(i).matrix()) {
          if (m.phase().equals(test)) {
            String name = labels.get(i) + (batches > 1 ? " batch " + m.batch() : "");
            series.computeIfAbsent(name, n -> new XYSeries(n, true, true)).add((double) m.context(), m.tokensPerS());
          }
        }
      }
      if (series.isEmpty()) {
        continue;
      }
      XYSeriesCollection data = new XYSeriesCollection();
      series.values().forEach(data::addSeries);
      String what = test.equals("pp") ? "Prompt processing (pp)" : "Token generation (tg)";
      String title = what + " vs context length: " + g.model();
      JFreeChart chart = ChartFactory.createXYLineChart(title, "context (tokens)",
          test.equals("pp") ? "prompt tokens/s" : "generated tokens/s", data, PlotOrientation.VERTICAL, true, false,
          false);
      lines(chart, true);
      contextAxis(chart, "context (tokens, log scale)");
      out.add(write(chart, dir, names, test + "-vs-context-" + g.model(), "matrix", List.copyOf(series.keySet())));
    }
  }

  private static void accuracyVsBudget(List<EvalRun> runs, Path dir, Set<String> names, List<Chart> out)
      throws IOException {
    for (Map.Entry<String, List<EvalColumns>> e : EvalColumns.byModel(runs).entrySet()) {
      List<EvalColumns> cols = new ArrayList<>(e.getValue());
      if (cols.stream().map(c -> c.first().label()).distinct().count() < 2) {
        continue;
      }
      cols.sort(Comparator.comparingDouble(c -> budgetOrder(c.first())));
      Map<String, Set<Integer>> lengthsPerTask = new LinkedHashMap<>();
      cols.forEach(c -> c.cells().values().forEach(x -> lengthsPerTask.computeIfAbsent(x.task(),
          t -> new HashSet<>()).add(x.length())));
      DefaultCategoryDataset data = new DefaultCategoryDataset();
      List<String> legend = new ArrayList<>();
      for (EvalColumns c : cols) {
        for (EvalRun.Cell x : c.cells().values()) {
          String series = lengthsPerTask.get(x.task()).size() > 1 ? x.task() + " @ " + x.length() : x.task();
          if (!legend.contains(series)) {
            legend.add(series);
          }
          data.addValue(x.accuracy(), series, c.label() + budgetSuffix(c.first()));
        }
      }
      String title = "Accuracy vs KV budget: " + e.getKey();
      JFreeChart chart = ChartFactory.createLineChart(title, "policy (KV budget, smallest first)",
          "accuracy (exact match, 0-1)", data, PlotOrientation.VERTICAL, true, false, false);
      CategoryPlot plot = chart.getCategoryPlot();
      LineAndShapeRenderer r = (LineAndShapeRenderer) plot.getRenderer();
      r.setDefaultShapesVisible(true);
      plot.getRangeAxis().setRange(0, 1.05);
      style(chart);
      out.add(write(chart, dir, names, "accuracy-vs-budget-" + e.getKey(), "eval", legend));
    }
  }

  /**
   * Orders policies by their KV budget: the recorded budget in tokens, else the first number in the
   * spec ({@code quest:k=4} before {@code quest:k=16}); policies without one (full) last.
   */
  static double budgetOrder(EvalRun r) {
    if (r.budget() != null) {
      return r.budget();
    }
    if (r.policy() != null) {
      Matcher m = SPEC_NUMBER.matcher(r.policy());
      if (m.find()) {
        return Double.parseDouble(m.group(2));
      }
    }
    return Double.MAX_VALUE;
  }

  private static String budgetSuffix(EvalRun r) {
    return r.budget() == null ? "" : " (" + Fmt.num(r.budget()) + " tokens)";
  }

  private static void kernelsVsContext(KernelRun k, Path dir, Set<String> names, List<Chart> out) throws IOException {
    long batches = k.rows().stream().map(KernelRun.Row::batch).distinct().count();
    Map<String, XYSeries> series = new LinkedHashMap<>();
    for (KernelRun.Row r : k.rows()) {
      if (r.context() == null || r.fraction() == null || r.fraction().isNaN()) {
        continue;
      }
      String name = r.op() + (r.variant() == null ? "" : " " + r.variant())
          + (batches > 1 && r.batch() != null ? " batch " + r.batch() : "");
      series.computeIfAbsent(name, n -> new XYSeries(n, true, true)).add((double) r.context(), 100 * r.fraction());
    }
    series.values().removeIf(s -> s.getItemCount() < 2);
    if (series.isEmpty()) {
      return;
    }
    XYSeriesCollection data = new XYSeriesCollection();
    series.values().forEach(data::addSeries);
    String stem = k.fileName().replaceFirst("\\.jsonl?$", "");
    String title = "% of roofline vs context length: " + stem;
    JFreeChart chart = ChartFactory.createXYLineChart(title, "context (KV tokens)", "% of the named roofline", data,
        PlotOrientation.VERTICAL, true, false, false);
    lines(chart, true);
    contextAxis(chart, "context (KV tokens, log scale)");
    chart.getXYPlot().getRangeAxis().setRange(0, 105);
    out.add(write(chart, dir, names, "roofline-vs-context-" + stem, "kernels", List.copyOf(series.keySet())));
  }

  /** Context lengths double from point to point: a base-2 log axis with the tokens as plain integers. */
  private static void contextAxis(JFreeChart chart, String label) {
    LogAxis axis = new LogAxis(label);
    axis.setBase(2);
    axis.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
    axis.setTickUnit(new NumberTickUnit(1));
    axis.setNumberFormatOverride(new DecimalFormat("#,##0", DecimalFormatSymbols.getInstance(Locale.ROOT)));
    axis.setLabelFont(chart.getXYPlot().getDomainAxis().getLabelFont());
    chart.getXYPlot().setDomainAxis(axis);
  }

  private static void lines(JFreeChart chart, boolean shapes) {
    XYLineAndShapeRenderer r = new XYLineAndShapeRenderer(true, shapes);
    r.setDrawSeriesLineAsPath(true);
    chart.getXYPlot().setRenderer(r);
    style(chart);
  }

  private static void style(JFreeChart chart) {
    chart.setBackgroundPaint(Color.WHITE);
    chart.getPlot().setDrawingSupplier(new DefaultDrawingSupplier(PALETTE,
        DefaultDrawingSupplier.DEFAULT_FILL_PAINT_SEQUENCE, DefaultDrawingSupplier.DEFAULT_OUTLINE_PAINT_SEQUENCE,
        DefaultDrawingSupplier.DEFAULT_STROKE_SEQUENCE, DefaultDrawingSupplier.DEFAULT_OUTLINE_STROKE_SEQUENCE,
        DefaultDrawingSupplier.DEFAULT_SHAPE_SEQUENCE));
    chart.getTitle().setFont(chart.getTitle().getFont().deriveFont(14f));
    if (chart.getPlot() instanceof XYPlot p) {
      p.setBackgroundPaint(Color.WHITE);
      p.setDomainGridlinePaint(Color.LIGHT_GRAY);
      p.setRangeGridlinePaint(Color.LIGHT_GRAY);
      for (int i = 0; i < p.getDataset().getSeriesCount(); ++i) {
        p.getRenderer().setSeriesStroke(i, new BasicStroke(2f));
      }
    } else if (chart.getPlot() instanceof CategoryPlot p) {
      p.setBackgroundPaint(Color.WHITE);
      p.setRangeGridlinePaint(Color.LIGHT_GRAY);
      for (int i = 0; i < p.getDataset().getRowCount(); ++i) {
        p.getRenderer().setSeriesStroke(i, new BasicStroke(2f));
      }
    }
  }

  private static Chart write(JFreeChart chart, Path dir, Set<String> names, String stem, String section,
      List<String> series) throws IOException {
    String base = slug(stem);
    String name = base;
    for (int i = 2; !names.add(name); ++i) {
      name = base + "-" + i;
    }
    Path file = dir.resolve(name + ".svg");
    SVGGraphics2D g2 = new SVGGraphics2D(WIDTH, HEIGHT);
    // Fixed ids and one decimal: the same records give the same bytes, and files stay small.
    g2.setDefsKeyPrefix("k");
    g2.setGeomDoubleConverter(d -> String.format(Locale.ROOT, "%.1f", d));
    g2.setTransformDoubleConverter(d -> String.format(Locale.ROOT, "%.3f", d));
    chart.draw(g2, new Rectangle(0, 0, WIDTH, HEIGHT));
    Files.writeString(file, g2.getSVGDocument(), StandardCharsets.UTF_8);
    return new Chart(file, chart.getTitle().getText(), section, List.copyOf(series));
  }

  /** A file-name stem: lower case, runs of other characters as one dash, at most 80 characters. */
  static String slug(String s) {
    String x = s.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9.]+", "-").replaceAll("^-+|-+$", "");
    return x.length() > 80 ? x.substring(0, 80).replaceAll("-+$", "") : x;
  }
}
