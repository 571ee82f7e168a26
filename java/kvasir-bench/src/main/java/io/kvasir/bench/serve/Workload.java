package io.kvasir.bench.serve;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A seeded serving workload. The seed splits into three independent streams (in this order):
 * the shared prefix's tokens, the prompts (request by request: a length uniform in
 * [promptMin, promptMax], then that many token ids uniform in [0, vocab)), and the arrival gaps
 * (exponential with mean 1/rate; the first request arrives at 0). So the first K requests of a
 * workload are those of the same workload with K requests, and the rate changes only arrivals.
 */
public final class Workload {
  /** The format name of {@link #export}'s JSON. */
  public static final String FORMAT = "kvasir-serve-workload/1";

  /** One request of the workload. */
  public record Request(int[] prompt, int outputTokens, double arrivalSeconds) {
    public Request {
      prompt = prompt.clone();
    }

    @Override
    public int[] prompt() {
      return prompt.clone();
    }

    public int promptTokens() {
      return prompt.length;
    }
  }

  private final WorkloadSpec spec;
  private final List<Request> requests;

  private Workload(WorkloadSpec spec, List<Request> requests) {
    this.spec = spec;
    this.requests = List.copyOf(requests);
  }

  public static Workload generate(WorkloadSpec spec) {
    SplittableRandom root = new SplittableRandom(spec.seed());
    SplittableRandom prefixRng = root.split();
    SplittableRandom promptRng = root.split();
    SplittableRandom arrivalRng = root.split();
    int[] prefix = prefixRng.ints(spec.sharedPrefixTokens(), 0, spec.vocabSize()).toArray();
    List<Request> out = new ArrayList<>(spec.requests());
    double t = 0;
    for (int i = 0; i < spec.requests(); ++i) {
      int len = spec.promptMin() + promptRng.nextInt(spec.promptMax() - spec.promptMin() + 1);
      int[] prompt = new int[prefix.length + len];
      System.arraycopy(prefix, 0, prompt, 0, prefix.length);
      for (int j = prefix.length; j < prompt.length; ++j) {
        prompt[j] = promptRng.nextInt(spec.vocabSize());
      }
      if (i > 0 && !spec.offline()) {
        t += -Math.log(1 - arrivalRng.nextDouble()) / spec.rate();
      }
      out.add(new Request(prompt, spec.outputTokens(), t));
    }
    return new Workload(spec, out);
  }

  /**
   * A warm-up workload that shares nothing with this one (another seed, no shared prefix, so the
   * prefix cache holds none of the measured prompts): {@code count} requests of this workload's
   * total prompt lengths, all at once, at most 16 output tokens each.
   */
  public Workload warmup(int count) {
    WorkloadSpec w = new WorkloadSpec(count, spec.sharedPrefixTokens() + spec.promptMin(),
        spec.maxPromptTokens(), Math.min(16, spec.outputTokens()), 0, Double.POSITIVE_INFINITY,
        ~spec.seed() * 0x9E3779B97F4A7C15L, spec.vocabSize());
    return generate(w);
  }

  /** The first {@code k} requests (k >= the size: all of them). */
  public Workload first(int k) {
    if (k < 1) {
      throw new IllegalArgumentException("a subsample of " + k + " requests must hold at least one");
    }
    if (k >= requests.size()) {
      return this;
    }
    WorkloadSpec s = new WorkloadSpec(k, spec.promptMin(), spec.promptMax(), spec.outputTokens(),
        spec.sharedPrefixTokens(), spec.rate(), spec.seed(), spec.vocabSize());
    return new Workload(s, requests.subList(0, k));
  }

  public WorkloadSpec spec() {
    return spec;
  }

  public List<Request> requests() {
    return requests;
  }

  public long promptTokens() {
    return requests.stream().mapToLong(Request::promptTokens).sum();
  }

  /**
   * Writes the exact requests as JSON ({@link #FORMAT}): the spec, then per request its prompt
   * ids, output tokens and arrival, for a peer to run the identical workload.
   */
  public void export(Path file) throws IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = json.createObjectNode();
    root.put("format", FORMAT);
    root.put("seed", spec.seed());
    root.put("vocab_size", spec.vocabSize());
    root.put("prompt_min", spec.promptMin());
    root.put("prompt_max", spec.promptMax());
    root.put("shared_prefix_tokens", spec.sharedPrefixTokens());
    root.put("output_tokens", spec.outputTokens());
    if (spec.offline()) {
      root.putNull("rate");
    } else {
      root.put("rate", spec.rate());
    }
    root.put("ignore_eos", true);
    root.put("sampling", "greedy");
    ArrayNode list = root.putArray("requests");
    for (Request r : requests) {
      ObjectNode o = list.addObject();
      o.put("arrival_s", r.arrivalSeconds());
      o.put("output_tokens", r.outputTokens());
      ArrayNode ids = o.putArray("prompt");
      for (int id : r.prompt) {
        ids.add(id);
      }
    }
    json.writeValue(file.toFile(), root);
  }
}
