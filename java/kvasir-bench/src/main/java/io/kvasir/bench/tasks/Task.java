package io.kvasir.bench.tasks;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.stream.Collectors;

/** The long-context tasks (templates in docs/bench-tasks.md), by their record names. */
public enum Task {
  PASSKEY(true),
  NIAH_SINGLE(true),
  NIAH_MULTIKEY(true),
  NIAH_MULTIVALUE(true),
  KV_RETRIEVAL(false),
  VARIABLE_TRACKING(true),
  ARITHMETIC(false),
  DOCQA(true),
  NIAH_MULTIQUERY(true),
  CWE(false);

  private final boolean needsHaystack;
  private final String id;
  private final long salt;

  Task(boolean needsHaystack) {
    this.needsHaystack = needsHaystack;
    this.id = name().toLowerCase(Locale.ROOT);
    this.salt = fnv1a64(id);
  }

  /** The name in records and on the command line ("niah_multikey"). */
  public String id() {
    return id;
  }

  public boolean needsHaystack() {
    return needsHaystack;
  }

  /**
   * The random stream of one record: {@code SplittableRandom(seed ^ salt)}, the salt being the
   * 64-bit FNV-1a hash of the task's name, so tasks sharing a seed draw independently.
   */
  SplittableRandom random(long seed) {
    return new SplittableRandom(seed ^ salt);
  }

  /**
   * The task of a name.
   *
   * @throws IllegalArgumentException listing the names when there is no such task
   */
  public static Task of(String name) {
    for (Task t : values()) {
      if (t.id.equals(name.strip())) {
        return t;
      }
    }
    throw new IllegalArgumentException("unknown task \"" + name + "\"; tasks: " + names());
  }

  public static String names() {
    return Arrays.stream(values()).map(Task::id).collect(Collectors.joining(", "));
  }

  static long fnv1a64(String s) {
    long h = 0xcbf29ce484222325L;
    for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
      h ^= b & 0xff;
      h *= 0x100000001b3L;
    }
    return h;
  }

  @Override
  public String toString() {
    return id;
  }
}
