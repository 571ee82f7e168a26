package io.kvasir.bench.report;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A GitHub-flavoured markdown table: a header, an alignment row, and rows of the header's width.
 * Cells are escaped ({@code |} and line breaks), empty cells print as a dash.
 */
final class MarkdownTable {
  private final List<String> header;
  private final boolean[] rightAligned;
  private final List<List<String>> rows = new ArrayList<>();

  /** @param rightAligned per column: numbers are right-aligned */
  MarkdownTable(List<String> header, boolean... rightAligned) {
    if (rightAligned.length != 0 && rightAligned.length != header.size()) {
      throw new IllegalArgumentException(header.size() + " columns, " + rightAligned.length + " alignments");
    }
    this.header = List.copyOf(header);
    this.rightAligned = rightAligned.length == 0 ? new boolean[header.size()] : rightAligned.clone();
  }

  /** A table whose first column is text and the rest numbers. */
  static MarkdownTable labelled(List<String> header) {
    boolean[] right = new boolean[header.size()];
    Arrays.fill(right, 1, right.length, true);
    return new MarkdownTable(header, right);
  }

  MarkdownTable row(List<String> cells) {
    if (cells.size() != header.size()) {
      throw new IllegalArgumentException("row of " + cells.size() + " cells in a table of " + header.size()
          + " columns: " + cells);
    }
    rows.add(List.copyOf(cells.stream().map(c -> c == null ? Fmt.NONE : c).toList()));
    return this;
  }

  MarkdownTable row(String... cells) {
    return row(Arrays.asList(cells));
  }

  int size() {
    return rows.size();
  }

  String render() {
    StringBuilder sb = new StringBuilder();
    line(sb, header);
    sb.append('|');
    for (boolean r : rightAligned) {
      sb.append(r ? "---:|" : "---|");
    }
    sb.append('\n');
    for (List<String> r : rows) {
      line(sb, r);
    }
    return sb.toString();
  }

  private static void line(StringBuilder sb, List<String> cells) {
    sb.append('|');
    for (String c : cells) {
      sb.append(' ').append(escape(c)).append(" |");
    }
    sb.append('\n');
  }

  static String escape(String s) {
    return s.replace("|", "\\|").replace("\r", " ").replace("\n", " ");
  }
}
