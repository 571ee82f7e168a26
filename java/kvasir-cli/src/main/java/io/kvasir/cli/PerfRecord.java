package io.kvasir.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvasir.engine.Engine;
import io.kvasir.engine.GenerationResult;
import io.kvasir.nativeapi.ModelShape;
import io.kvasir.nativeapi.Roofline;
import io.kvasir.perf.PerfRecords;
import java.io.IOException;
import java.nio.file.Path;

/** A perf record (DESIGN.md "Rooflines and the perf record") of one generation against its roofline. */
final class PerfRecord {
  private PerfRecord() {}

  static void writeDecode(Path file, Engine engine, Roofline ceiling, GenerationResult r,
      io.kvasir.engine.GenerationStats total, int batch, double stepBytes, double rooflineTokens, String args)
      throws IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = PerfRecords.header(json.createObjectNode(), "decode", ceiling.backend(), ceiling.device(),
        "kvasir " + args);
    ModelShape shape = engine.shape();
    ObjectNode config = root.putObject("configuration");
    config.put("model", engine.modelName());
    config.put("dtype", shape.weightDtype().name());
    config.put("backend", ceiling.backend().name());
    config.put("prompt_tokens", r.stats().promptTokens());
    config.put("generated_tokens", r.stats().generatedTokens());
    config.put("batch", batch);
    ObjectNode ceilings = root.putObject("ceilings");
    ceilings.put("read_bytes_per_s", ceiling.readBytesPerS());
    ceilings.put("copy_bytes_per_s", ceiling.copyBytesPerS());
    ObjectNode fig = root.putArray("figures").addObject();
    fig.put("op", "decode");
    fig.put("roofline", "read");
    fig.put("weight_bytes", engine.weightBytes());
    fig.put("bytes_per_step", stepBytes);
    fig.put("ttft_ms", total.ttftMillis());
    fig.put("decode_tokens_per_s", total.decodeTokensPerSecond());
    fig.put("roofline_tokens_per_s", rooflineTokens);
    fig.put("fraction_of_roofline", total.decodeTokensPerSecond() / rooflineTokens);
    json.writerWithDefaultPrettyPrinter().writeValue(file.toFile(), root);
  }
}
