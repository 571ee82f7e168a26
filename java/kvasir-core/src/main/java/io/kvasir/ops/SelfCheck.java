package io.kvasir.ops;

import io.kvasir.nativeapi.AttentionShape;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.DeviceCount;
import io.kvasir.nativeapi.Devices;
import io.kvasir.nativeapi.Stream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.LongFunction;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Runs every native op on every backend with a usable device (the CPU always, each CUDA device
 * the library reports) on fresh random inputs, with outputs poisoned by NaN, and compares each
 * output element with {@link ReferenceOps} within {@link ErrorBounds}. Where CUDA runs, its
 * outputs are also compared with the CPU's, within the sum of both bounds.
 *
 * <p>Each run draws a seed (logged, and in the report) unless one is given, so repeated runs
 * cover new inputs and any failure can be replayed: {@code -Dkvasir.selfcheck.seed=...} or
 * {@link Builder#seed}.
 */
public final class SelfCheck {
  /** System property that fixes the run seed, to replay a failure. */
  public static final String SEED_PROPERTY = "kvasir.selfcheck.seed";

  private static final Logger LOG = LogManager.getLogger(SelfCheck.class);

  private final long seed;
  private final boolean cuda;

  private SelfCheck(Builder b) {
    this.seed = b.seed != null ? b.seed : defaultSeed();
    this.cuda = b.cuda;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Options; all optional. */
  public static final class Builder {
    private Long seed;
    private boolean cuda = true;

    private Builder() {}

    /** Fixes the run seed (default: {@code -Dkvasir.selfcheck.seed}, else a fresh random one). */
    public Builder optSeed(long seed) {
      this.seed = seed;
      return this;
    }

    /** Whether to check CUDA devices when the library reports some (default true). */
    public Builder optCuda(boolean cuda) {
      this.cuda = cuda;
      return this;
    }

    public SelfCheck build() {
      return new SelfCheck(this);
    }
  }

  public long seed() {
    return seed;
  }

  /** Runs every check. Failures are results, not exceptions. */
  public SelfCheckReport run() {
    LOG.info("self-check seed {} (replay with -D{}={})", seed, SEED_PROPERTY, seed);
    List<CheckCase> cases = cases(seed);
    List<BackendReport> reports = new ArrayList<>();
    List<String> notes = new ArrayList<>();

    Map<String, Map<String, double[]>> cpuOutputs = new LinkedHashMap<>();
    reports.add(runDevice(Backend.CPU, 0, cases, null, cpuOutputs));

    if (cuda) {
      DeviceCount count = Devices.count(Backend.CUDA);
      if (!count.available()) {
        notes.add("CUDA not checked: " + count.reason());
      }
      for (int device = 0; device < count.count(); device++) {
        reports.add(runDevice(Backend.CUDA, device, cases, cpuOutputs, null));
      }
    } else {
      notes.add("CUDA not checked: disabled");
    }
    SelfCheckReport report = new SelfCheckReport(seed, reports, notes);
    if (report.passed()) {
      LOG.info("self-check passed: {} checks, seed {}", report.checkCount(), seed);
    } else {
      LOG.error("self-check FAILED: {} of {} checks, seed {}", report.failureCount(), report.checkCount(), seed);
    }
    return report;
  }

  /**
   * @param reference CPU outputs to compare against (null on the CPU itself)
   * @param keep where to store this device's outputs (null to drop them)
   */
  private static BackendReport runDevice(Backend backend, int device, List<CheckCase> cases,
      Map<String, Map<String, double[]>> reference, Map<String, Map<String, double[]>> keep) {
    List<CheckResult> results = new ArrayList<>();
    String deviceName;
    try {
      deviceName = Devices.props(backend, device).name();
    } catch (RuntimeException e) {
      deviceName = "?";
    }
    try (Stream stream = Stream.create(backend, device)) {
      for (CheckCase c : cases) {
        Map<String, double[]> outputs;
        try {
          outputs = c.run(stream);
        } catch (RuntimeException e) {
          LOG.error("{} on {}:{} threw", c.name(), backend, device, e);
          results.add(CheckResult.failed(c.name(), backend, device, c.seed(), "threw " + e));
          continue;
        }
        results.add(log(CheckResult.of(c.name(), backend, device, c.seed(), compare(c, outputs, false, null))));
        if (keep != null) {
          keep.put(c.name(), outputs);
        }
        if (reference != null && reference.containsKey(c.name())) {
          results.add(log(CheckResult.of(c.name() + " vs cpu", backend, device, c.seed(),
              compare(c, outputs, true, reference.get(c.name())))));
        }
      }
    } catch (RuntimeException e) { // no stream: the device is unusable, which is itself a failure
      LOG.error("cannot run the self-check on {}:{}", backend, device, e);
      results.add(CheckResult.failed("stream", backend, device, 0, "cannot create a stream: " + e));
    }
    return new BackendReport(backend, device, deviceName, results);
  }

  /**
   * Against the reference within each element's bound, or (vsOther) against another backend's
   * outputs within twice the bound: each backend is within its bound of the reference.
   */
  private static Agreement compare(CheckCase c, Map<String, double[]> outputs, boolean vsOther,
      Map<String, double[]> other) {
    Agreement result = Agreement.EMPTY;
    for (Map.Entry<String, CheckCase.Expected> e : c.expected().entrySet()) {
      CheckCase.Expected exp = e.getValue();
      double[] want = vsOther ? other.get(e.getKey()) : exp.values();
      double[] tol = exp.tolerance();
      if (vsOther) {
        tol = tol.clone();
        for (int i = 0; i < tol.length; i++) {
          tol[i] *= 2;
        }
      }
      result = result.worse(Agreement.of(e.getKey(), exp.rowLength(), want, outputs.get(e.getKey()), tol));
    }
    return result;
  }

  private static CheckResult log(CheckResult r) {
    if (r.passed()) {
      LOG.debug("pass {} on {}:{}: error {} <= {} (seed {})", r.name(), r.backend(), r.device(), r.maxError(),
          r.tolerance(), r.seed());
    } else {
      LOG.error("FAIL {} on {}:{}: {} (seed {})", r.name(), r.backend(), r.device(), r.detail(), r.seed());
    }
    return r;
  }

  /** The case list: every op, both dtypes, GQA and MHA, every supported head_dim, odd sizes. */
  static List<CheckCase> cases(long runSeed) {
    List<LongFunction<CheckCase>> makers = new ArrayList<>();
    makers.add(s -> new MergeCase(MergeCase.Kind.PAIR, DType.F32, 2, 257, 128, s));
    makers.add(s -> new MergeCase(MergeCase.Kind.PAIR, DType.BF16, 2, 257, 64, s));
    makers.add(s -> new MergeCase(MergeCase.Kind.IN_PLACE, DType.F32, 2, 129, 256, s));
    makers.add(s -> new MergeCase(MergeCase.Kind.IN_PLACE, DType.BF16, 2, 129, 128, s));
    makers.add(s -> new MergeCase(MergeCase.Kind.N_WAY, DType.F32, 3, 193, 128, s));
    makers.add(s -> new MergeCase(MergeCase.Kind.N_WAY, DType.BF16, 3, 193, 64, s));
    for (DType dtype : new DType[] {DType.F32, DType.BF16}) {  // the kernel dtypes
      for (int headDim : new int[] {64, 128, 256}) {
        makers.add(s -> new AttentionCase(dtype, new AttentionShape(2, 8, 2, headDim, 1000), s));
      }
    }
    makers.add(s -> new AttentionCase(DType.F32, new AttentionShape(3, 4, 4, 128, 1), s));
    makers.add(s -> new AttentionCase(DType.BF16, new AttentionShape(1, 6, 3, 64, 4099), s));
    makers.add(s -> new AttentionCase(DType.F32, new AttentionShape(2, 4, 1, 64, 0), s));
    makers.add(s -> new PageCopyCase(PageCopyCase.Kind.GATHER, 96, 13, 37, 20, s));
    makers.add(s -> new PageCopyCase(PageCopyCase.Kind.SCATTER, 100, 13, 13, 29, s));
    makers.add(s -> new PageCopyCase(PageCopyCase.Kind.PERMUTE, 256, 17, 31, 23, s));

    List<CheckCase> cases = new ArrayList<>(makers.size());
    for (int i = 0; i < makers.size(); i++) {
      cases.add(makers.get(i).apply(RandomInputs.mix(runSeed + 0x9E3779B97F4A7C15L * (i + 1))));
    }
    return cases;
  }

  private static long defaultSeed() {
    String fixed = System.getProperty(SEED_PROPERTY);
    if (fixed != null && !fixed.isBlank()) {
      try {
        return Long.parseLong(fixed.trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("-D" + SEED_PROPERTY + "=" + fixed + " is not a long", e);
      }
    }
    return ThreadLocalRandom.current().nextLong();
  }
}
