package io.kvasir.cli;

import io.kvasir.engine.Engine;
import io.kvasir.engine.EngineLoop;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.policy.Policy;
import io.kvasir.server.OpenAiServer;
import io.kvasir.server.ServedModel;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code kvasir serve}: an OpenAI-compatible HTTP server (docs/server.md) until SIGTERM or
 * SIGINT, which drain the engine loop, close the listener and free the engine. Exit code 0 after
 * a signal, 1 when the model or port cannot be used, 2 for a malformed command line.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = "Serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions,"
        + " /v1/models, /health, /metrics).")
final class ServeCommand implements Callable<Integer> {
  private static final Logger LOG = LogManager.getLogger(ServeCommand.class);

  @Spec
  CommandSpec spec;

  @Option(names = "--model", paramLabel = "DIR|kvasir-ref|synthetic:NAME", defaultValue = "kvasir-ref",
      description = "As for generate: a model directory, kvasir-ref, synthetic:<preset> or tiny:<arch>.")
  String model;

  @Option(names = "--served-model-name", paramLabel = "NAME",
      description = "The model id clients use (default: --model as given).")
  String servedName;

  @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to bind (default ${DEFAULT-VALUE}).")
  String host;

  @Option(names = "--port", required = true, description = "TCP port (0: any free port, printed at start).")
  int port;

  @Option(names = "--policy", paramLabel = "SPEC", defaultValue = "full",
      description = "Cache policy of every request (default ${DEFAULT-VALUE}); see generate --help.")
  String policy;

  @Option(names = "--device", defaultValue = "cpu", description = "cpu or cuda (default ${DEFAULT-VALUE}).")
  GenerateCommand.Device device;

  @Option(names = "--device-index", defaultValue = "0", description = "Which device of the backend.")
  int deviceIndex;

  @Option(names = "--dtype", description = "f32 or bf16 (default: bf16 unless the checkpoint is fp32).")
  GenerateCommand.WeightType dtype;

  @Option(names = "--max-batch", defaultValue = "64", description = "Sequences running at once (default ${DEFAULT-VALUE}).")
  int maxBatch;

  @Option(names = "--max-context", defaultValue = "4096", description = "Tokens per sequence (default ${DEFAULT-VALUE}).")
  int maxContext;

  @Option(names = "--kv-budget", paramLabel = "BYTES|TOKENS", description = "KV memory (2GiB, 64Ktok); default:"
      + " --max-batch sequences of --max-context tokens.")
  String kvBudget;

  @Option(names = "--page-tokens", defaultValue = "16", description = "Tokens per KV page (default ${DEFAULT-VALUE}).")
  int pageTokens;

  @Option(names = "--max-waiting", defaultValue = "256", description = "Requests queued before 429 (default ${DEFAULT-VALUE}).")
  int maxWaiting;

  @Option(names = "--max-body-bytes", defaultValue = "8388608", description = "Largest request body (default ${DEFAULT-VALUE}).")
  long maxBodyBytes;

  @Option(names = "--http-threads", paramLabel = "N", description = "HTTP worker threads, the most requests in"
      + " flight (a stream holds one); default --max-batch + --max-waiting + 8.")
  Integer httpThreads;

  @Option(names = "--shutdown-timeout", defaultValue = "30", paramLabel = "SECONDS",
      description = "On SIGTERM: seconds in-flight requests may run before they are cancelled (default ${DEFAULT-VALUE}).")
  int shutdownSeconds;

  @Option(names = "--tokenizer", paramLabel = "DIR", description = "A directory with tokenizer.json (synthetic models).")
  Path tokenizer;

  @Option(names = "--seed", defaultValue = "0", description = "Seed of synthetic weights.")
  long seed;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    Policy parsed;
    try {
      parsed = Policy.parse(policy);
    } catch (IllegalArgumentException e) {
      err.println("error: --policy: " + e.getMessage());
      return 2;
    }
    if (maxBatch < 1 || maxWaiting < 1 || maxBodyBytes < 1 || shutdownSeconds < 0
        || (httpThreads != null && httpThreads < 1)) {
      err.println("error: --max-batch, --max-waiting, --max-body-bytes and --http-threads must be >= 1");
      return 2;
    }
    Engine.Builder builder = Engine.builder().setModel(model)
        .optDevice(device == GenerateCommand.Device.cuda ? Backend.CUDA : Backend.CPU, deviceIndex)
        .optMaxContext(maxContext).optMaxBatch(maxBatch).optSyntheticSeed(seed).optPolicy(parsed)
        .optPageTokens(pageTokens);
    if (dtype != null) {
      builder.optDtype(dtype == GenerateCommand.WeightType.f32 ? DType.F32 : DType.BF16);
    }
    if (tokenizer != null) {
      builder.optTokenizer(tokenizer);
    }
    if (kvBudget != null) {
      builder.optKvBudget(kvBudget);
    }
    Engine engine = null;
    OpenAiServer server;
    try {
      engine = builder.build();
      EngineLoop loop = EngineLoop.start(engine, maxWaiting);
      int threads = httpThreads != null ? httpThreads : maxBatch + maxWaiting + 8;
      server = OpenAiServer.start(loop, new ServedModel(servedName != null ? servedName : model, engine, parsed),
          host, port, threads, maxBodyBytes, true);
    } catch (Exception e) {
      LOG.debug("serve failed to start", e);
      err.println("error: " + e.getMessage());
      err.flush();
      if (engine != null) {
        engine.close();
      }
      return 1;
    }
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        server.stop(Duration.ofSeconds(shutdownSeconds));
        err.println("kvasir serve: stopped");
        err.flush();
      } finally {
        stopped.countDown();
        LogManager.shutdown();
      }
    }, "kvasir-serve-shutdown"));
    out.printf("kvasir serve: %s (policy %s) on http://%s:%d/v1%n", model, parsed.spec(), host, server.port());
    out.flush();
    try {
      stopped.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      server.stop(Duration.ofSeconds(shutdownSeconds));
    }
    return 0;
  }
}
