package io.kvasir.bench.report;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * A run's provenance as its record states it; any part may be null (the kernel JSON lines carry
 * none, older eval records no commit).
 *
 * @param command the command line that produced the record
 * @param device  the device line ({@code nvidia-smi}'s, or the engine's device label)
 * @param date    the record's date or timestamp, as written
 * @param commit  the git commit the run was built from
 */
public record RunInfo(String command, String device, String date, String commit) {
  static final RunInfo NONE = new RunInfo(null, null, null, null);

  static RunInfo of(Json json, JsonNode root) {
    return new RunInfo(json.optText(root, "", "command"), json.optText(root, "", "device"),
        json.optText(root, "", "date"), json.optText(root, "", "git_commit"));
  }

  /** Fills what this lacks from {@code outer} (a wrapper record's header). */
  RunInfo orElse(RunInfo outer) {
    return new RunInfo(command != null ? command : outer.command, device != null ? device : outer.device,
        date != null ? date : outer.date, commit != null ? commit : outer.commit);
  }

  /** The date part of {@link #date()} ({@code 2026-11-29T09:45:04Z} gives {@code 2026-11-29}). */
  String day() {
    if (date == null) {
      return null;
    }
    int t = date.indexOf('T');
    return t > 0 ? date.substring(0, t) : date;
  }
}
