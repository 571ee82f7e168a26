package io.kvasir.bench.serve;

import java.util.List;

/**
 * One workload of {@code kvasir-bench run}: its requests and how they were made (for the record's
 * workload section, which is the same under every policy). Built by {@link Workloads}.
 *
 * @param name         offline, online, long-gen, shared-prefix or rag
 * @param label        the name in file names and the summary: the name, or {@code online-r<rate>}
 * @param requests     in workload order, arrivals in seconds from the start
 * @param rate         requests per second (Poisson); infinite: all at once
 * @param seed         the seed the requests were drawn from
 * @param rule         how the seed became the requests (one line)
 * @param lengths      "fixed", "uniform" or "file"
 * @param lengthsFile  the lengths file, or null
 * @param sharedPrefixTokens tokens every prompt starts with (0: none)
 * @param rag          the RAG layout, or null
 */
public record BenchWorkload(String name, String label, List<Workload.Request> requests, double rate, long seed,
    String rule, String lengths, String lengthsFile, int sharedPrefixTokens, Rag rag) {

  /**
   * A RAG prompt's layout: {@code docs} documents of {@code docTokens} tokens each, drawn without
   * repetition from a pool of {@code pool}, then a question of {@code questionTokens} tokens.
   */
  public record Rag(int docs, int docTokens, int pool, int questionTokens) {
    public Rag {
      if (docs < 1 || docTokens < 1 || questionTokens < 0 || pool < docs) {
        throw new IllegalArgumentException("rag: " + docs + " documents of " + docTokens + " tokens from a pool of "
            + pool + " and a question of " + questionTokens + " tokens: need 1 <= docs <= pool, doc tokens >= 1,"
            + " question tokens >= 0");
      }
    }

    public int promptTokens() {
      return docs * docTokens + questionTokens;
    }
  }

  public BenchWorkload {
    requests = List.copyOf(requests);
    if (requests.isEmpty()) {
      throw new IllegalArgumentException("workload " + label + " has no requests");
    }
  }

  public boolean offline() {
    return Double.isInfinite(rate);
  }

  public long promptTokens() {
    return requests.stream().mapToLong(Workload.Request::promptTokens).sum();
  }

  public long outputTokens() {
    return requests.stream().mapToLong(Workload.Request::outputTokens).sum();
  }

  public int maxPromptTokens() {
    return requests.stream().mapToInt(Workload.Request::promptTokens).max().orElse(0);
  }

  public int minPromptTokens() {
    return requests.stream().mapToInt(Workload.Request::promptTokens).min().orElse(0);
  }

  public int maxOutputTokens() {
    return requests.stream().mapToInt(Workload.Request::outputTokens).max().orElse(0);
  }

  public int minOutputTokens() {
    return requests.stream().mapToInt(Workload.Request::outputTokens).min().orElse(0);
  }

  /** Tokens the longest sequence holds: the largest prompt plus output. */
  public int maxContextTokens() {
    return requests.stream().mapToInt(r -> r.promptTokens() + r.outputTokens()).max().orElse(0);
  }
}
