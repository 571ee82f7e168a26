package io.kvasir.bench.report;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * The columns of an accuracy table: per model, one column per policy. Runs of one policy on one
 * device whose (task, length) cells do not overlap are one column (an eval grid run in parts, as
 * in refeval-cpu.json); runs that repeat a cell stay apart and are told apart by device, then file.
 *
 * @param label  the column label, unique within the model
 * @param cells  the column's cells by {@code task @ length}, in the order first seen
 */
record EvalColumns(String label, EvalRun first, Map<String, EvalRun.Cell> cells, List<String> files) {

  /** The models in order first seen, each with its columns. */
  static Map<String, List<EvalColumns>> byModel(List<EvalRun> runs) {
    Map<String, List<EvalRun>> models = new LinkedHashMap<>();
    for (EvalRun r : runs) {
      models.computeIfAbsent(String.valueOf(r.model()), k -> new ArrayList<>()).add(r);
    }
    Map<String, List<EvalColumns>> out = new LinkedHashMap<>();
    for (Map.Entry<String, List<EvalRun>> e : models.entrySet()) {
      List<EvalRun> firsts = new ArrayList<>();
      List<Map<String, EvalRun.Cell>> cells = new ArrayList<>();
      List<Set<String>> files = new ArrayList<>();
      for (EvalRun r : e.getValue()) {
        int at = -1;
        for (int i = 0; i < firsts.size() && at < 0; ++i) {
          EvalRun f = firsts.get(i);
          if (f.label().equals(r.label()) && Objects.equals(f.info().device(), r.info().device())
              && Objects.equals(f.budget(), r.budget()) && disjoint(cells.get(i), r.cells())) {
            at = i;
          }
        }
        if (at < 0) {
          firsts.add(r);
          cells.add(new LinkedHashMap<>());
          files.add(new LinkedHashSet<>());
          at = firsts.size() - 1;
        }
        for (EvalRun.Cell c : r.cells()) {
          cells.get(at).put(key(c), c);
        }
        files.get(at).add(r.fileName());
      }
      List<String> labels = ServeGroups.unique(firsts.stream().map(EvalRun::label).toList(),
          i -> firsts.get(i).info().device(), i -> String.join(", ", files.get(i)));
      List<EvalColumns> cols = new ArrayList<>();
      for (int i = 0; i < firsts.size(); ++i) {
        cols.add(new EvalColumns(labels.get(i), firsts.get(i), cells.get(i), List.copyOf(files.get(i))));
      }
      out.put(e.getKey(), cols);
    }
    return out;
  }

  private static boolean disjoint(Map<String, EvalRun.Cell> column, List<EvalRun.Cell> cells) {
    return cells.stream().noneMatch(c -> column.containsKey(key(c)));
  }

  static String key(EvalRun.Cell c) {
    return c.task() + " @ " + c.length();
  }
}
