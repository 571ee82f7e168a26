package io.kvasir.bench;

import io.kvasir.engine.Engine;
import io.kvasir.engine.ReferenceModel;
import io.kvasir.engine.SyntheticModels;
import io.kvasir.nativeapi.Backend;
import io.kvasir.nativeapi.DType;
import io.kvasir.nativeapi.Devices;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** The model options {@code eval} and {@code ppl} share, and the engine they describe. */
final class ModelOptions {
  enum Device { cpu, cuda }

  enum WeightType { f32, bf16 }

  @Option(names = "--model", paramLabel = "DIR", defaultValue = ReferenceModel.NAME,
      description = "A Hugging Face model directory (config.json, *.safetensors, tokenizer.json); kvasir-ref (default:"
          + " the reference model shipped in models/); tiny:<llama|qwen3|mistral|qwen2> (a small random demo"
          + " checkpoint); or synthetic:<preset> with --tokenizer.")
  String model;

  @Option(names = "--device", defaultValue = "cpu", description = "cpu or cuda (default ${DEFAULT-VALUE}).")
  Device device;

  @Option(names = "--device-index", defaultValue = "0", description = "Which device of the backend.")
  int deviceIndex;

  @Option(names = "--dtype", description = "Weight and KV-cache storage: f32 or bf16 (default: bf16 unless the"
      + " checkpoint is fp32).")
  WeightType dtype;

  @Option(names = {"--batch", "--max-batch"}, defaultValue = "8", description = "Sequences run together (the KV"
      + " cache holds this many full contexts unless --kv-budget says otherwise; default ${DEFAULT-VALUE}).")
  int batch;

  @Option(names = "--tokenizer", paramLabel = "DIR", description = "A directory with tokenizer.json (for synthetic"
      + " models, or to override the model's).")
  Path tokenizer;

  @Option(names = "--policy", paramLabel = "SPEC", description = "Cache policy (e.g. full, quest:k=16): a paged"
      + " cache with continuous batching; CPU only in this build. Default: slot caches, no policy.")
  String policy;

  Backend backend() {
    return device == Device.cuda ? Backend.CUDA : Backend.CPU;
  }

  /** "cpu:0" or "cuda:0", with the device's name when the library reports one. */
  String deviceLabel() {
    String label = device + ":" + deviceIndex;
    try {
      return label + " (" + Devices.props(backend(), deviceIndex).name() + ")";
    } catch (RuntimeException e) {
      return label;
    }
  }

  /**
   * The engine for these options with room for {@code maxContext} tokens per sequence.
   *
   * @throws IllegalArgumentException when the CUDA device does not exist or an option is out of range
   */
  Engine build(int maxContext) {
    return builder(maxContext).build();
  }

  /** The builder of {@link #build}, for commands that set more options. */
  Engine.Builder builder(int maxContext) {
    if (batch < 1) {
      throw new IllegalArgumentException("--batch " + batch + " must be >= 1");
    }
    Engine.Builder builder = Engine.builder().setModel(model).optDevice(backend(), deviceIndex)
        .optMaxContext(maxContext).optMaxBatch(batch);
    if (dtype != null) {
      builder.optDtype(dtype == WeightType.f32 ? DType.F32 : DType.BF16);
    }
    if (tokenizer != null) {
      builder.optTokenizer(tokenizer);
    }
    if (policy != null) {
      builder.optPolicy(policy);
    }
    return builder;
  }

  /** Where the model's tokenizer.json lives (the engine's own, read again for exact counts). */
  Path tokenizerDir() throws IOException {
    if (tokenizer != null) {
      return tokenizer;
    }
    if (SyntheticModels.isSynthetic(model)) {
      throw new IllegalArgumentException(model + " has no tokenizer: give --tokenizer DIR");
    }
    return modelDir();
  }

  /** The model's directory (kvasir-ref and tiny:* resolved); not for synthetic models. */
  Path modelDir() throws IOException {
    return Engine.modelDirectory(model);
  }
}
