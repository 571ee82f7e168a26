package io.kvasir.bench.fidelity;

import io.kvasir.engine.Engine;
import io.kvasir.engine.GenerationRequest;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.SamplingParams;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Compares policies with a baseline (full KV) on the same prompts, one engine at a time.
 *
 * <ol>
 *   <li>Baseline engine: the greedy continuation of {@code tokens} tokens per prompt (EOS ignored,
 *       so every prompt gives the same number of steps), then that continuation teacher-forced
 *       through it ({@link Engine#forceDecode}), keeping its logits.
 *   <li>Each policy's engine: the same continuation teacher-forced through the policy's decode
 *       path, and the policy's own greedy continuation; {@link PromptComparison#of} compares.
 * </ol>
 *
 * The baseline's logits stay on the heap between the phases: prompts x tokens x vocabulary x 4
 * bytes. The baseline's forced logits are also checked against its own generation: on the CPU
 * their argmax is the generated token at every step ({@link #baselineSelfAgreement}); a device
 * whose step depends on the batch may differ at near-ties.
 */
public final class FidelityRunner {
  private static final Logger LOG = LogManager.getLogger(FidelityRunner.class);

  /** A chat-rendered prompt. */
  public record Prompt(String id, String group, int[] tokens) {
    public Prompt {
      Objects.requireNonNull(id, "id");
      Objects.requireNonNull(group, "group");
      tokens = tokens.clone();
    }
  }

  private final Function<String, Engine> engines;
  private final int tokens;
  private final int batch;
  private double baselineSelfAgreement = Double.NaN;

  /**
   * @param engines opens an engine under a policy spec (the caller's model, device and sizes)
   * @param tokens  continuation tokens per prompt (N)
   * @param batch   prompts per engine call
   */
  public FidelityRunner(Function<String, Engine> engines, int tokens, int batch) {
    if (tokens < 1 || batch < 1) {
      throw new IllegalArgumentException("tokens " + tokens + " and batch " + batch + " must be >= 1");
    }
    this.engines = Objects.requireNonNull(engines, "engines");
    this.tokens = tokens;
    this.batch = batch;
  }

  /** Fraction of the baseline's steps whose forced-logit argmax is the token it generated (NaN before a run). */
  public double baselineSelfAgreement() {
    return baselineSelfAgreement;
  }

  /** Per policy (in the order given), its comparisons, prompt by prompt. */
  public Map<String, List<PromptComparison>> run(String baseline, List<String> policies, List<Prompt> prompts) {
    List<int[]> continuations = new ArrayList<>();
    List<float[][]> baseLogits = new ArrayList<>();
    long agree = 0;
    long steps = 0;
    try (Engine e = engines.apply(baseline)) {
      for (int from = 0; from < prompts.size(); from += batch) {
        List<Prompt> group = prompts.subList(from, Math.min(prompts.size(), from + batch));
        List<int[]> generated = generate(e, group);
        List<float[][]> logits = e.forceDecode(ids(group), generated);
        for (int k = 0; k < group.size(); ++k) {
          int[] g = generated.get(k);
          for (int i = 0; i < g.length; ++i) {
            agree += Divergence.argmax(logits.get(k)[i]) == g[i] ? 1 : 0;
          }
          steps += g.length;
        }
        continuations.addAll(generated);
        baseLogits.addAll(logits);
        LOG.info("baseline {}: {}/{} prompts", baseline, from + group.size(), prompts.size());
      }
    }
    baselineSelfAgreement = steps == 0 ? Double.NaN : agree / (double) steps;
    if (agree != steps) {
      LOG.warn("baseline {}: the forced logits' argmax is the generated token at {} of {} steps", baseline, agree,
          steps);
    }
    Map<String, List<PromptComparison>> out = new LinkedHashMap<>();
    for (String policy : policies) {
      List<PromptComparison> rows = new ArrayList<>();
      try (Engine e = engines.apply(policy)) {
        for (int from = 0; from < prompts.size(); from += batch) {
          int to = Math.min(prompts.size(), from + batch);
          List<Prompt> group = prompts.subList(from, to);
          List<float[][]> forced = e.forceDecode(ids(group), continuations.subList(from, to));
          List<int[]> own = generate(e, group);
          for (int k = 0; k < group.size(); ++k) {
            Prompt p = group.get(k);
            rows.add(PromptComparison.of(p.id(), p.group(), p.tokens().length, baseLogits.get(from + k),
                forced.get(k), continuations.get(from + k), own.get(k)));
          }
          LOG.info("{}: {}/{} prompts", policy, to, prompts.size());
        }
      }
      out.put(policy, rows);
    }
    return out;
  }

  private List<int[]> generate(Engine e, List<Prompt> group) {
    List<GenerationRequest> requests = new ArrayList<>();
    for (Prompt p : group) {
      requests.add(GenerationRequest.of(p.tokens(), tokens, SamplingParams.greedy()).withIgnoreEos(true));
    }
    List<int[]> out = new ArrayList<>();
    for (GenerationResult r : e.generateAll(requests, null)) {
      if (r.tokens().length != tokens) {
        throw new IllegalStateException("a greedy continuation ended after " + r.tokens().length + " of " + tokens
            + " tokens (" + r.finishReason() + "): raise the context");
      }
      out.add(r.tokens());
    }
    return out;
  }

  private static List<int[]> ids(List<Prompt> group) {
    return group.stream().map(Prompt::tokens).toList();
  }
}
