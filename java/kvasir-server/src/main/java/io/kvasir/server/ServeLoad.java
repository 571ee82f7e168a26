package io.kvasir.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * A closed-loop load generator for {@code kvasir serve} (ci/gpu.sh serveload): {@code clients}
 * threads each send streaming completions (random token-id prompts, {@code ignore_eos}) back to
 * back for {@code seconds}, then finish what they hold. Prints one JSON object: requests, errors,
 * 429s, output tokens per second, TTFT and TPOT percentiles (ms).
 *
 * <p>Usage: {@code java -cp kvasir-cli.jar:lib/* io.kvasir.server.ServeLoad URL MODEL CLIENTS
 * SECONDS PROMPT_TOKENS MAX_TOKENS VOCAB [OUT.json]}
 */
public final class ServeLoad {
  private record Sample(double ttftMs, double tpotMs, int tokens) {}

  private ServeLoad() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 7) {
      System.err.println("usage: ServeLoad URL MODEL CLIENTS SECONDS PROMPT_TOKENS MAX_TOKENS VOCAB [OUT.json]");
      System.exit(2);
    }
    String url = args[0].replaceAll("/+$", "");
    String model = args[1];
    int clients = Integer.parseInt(args[2]);
    double seconds = Double.parseDouble(args[3]);
    int promptTokens = Integer.parseInt(args[4]);
    int maxTokens = Integer.parseInt(args[5]);
    int vocab = Integer.parseInt(args[6]);
    HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(30)).build();
    long start = System.nanoTime();
    long stopAt = start + (long) (seconds * 1e9);
    List<List<Sample>> perClient = new ArrayList<>();
    AtomicLong errors = new AtomicLong();
    AtomicLong rejected = new AtomicLong();
    List<Thread> threads = new ArrayList<>();
    for (int c = 0; c < clients; ++c) {
      List<Sample> samples = new ArrayList<>();
      perClient.add(samples);
      SplittableRandom rng = new SplittableRandom(1000L + c);
      Thread t = new Thread(() -> {
        while (System.nanoTime() < stopAt) {
          try {
            Sample s = one(http, url, model, rng.ints(promptTokens, 0, vocab).toArray(), maxTokens, rejected);
            if (s != null) {
              samples.add(s);
            }
          } catch (IOException | RuntimeException e) {
            errors.incrementAndGet();
          } catch (InterruptedException e) {
            return;
          }
        }
      }, "load-" + c);
      threads.add(t);
      t.start();
    }
    for (Thread t : threads) {
      t.join();
    }
    double wall = (System.nanoTime() - start) / 1e9;
    List<Sample> all = perClient.stream().flatMap(List::stream).toList();
    ObjectNode out = Json.MAPPER.createObjectNode();
    out.put("clients", clients);
    out.put("seconds_asked", seconds);
    out.put("seconds", wall);
    out.put("prompt_tokens", promptTokens);
    out.put("max_tokens", maxTokens);
    out.put("requests", all.size());
    out.put("errors", errors.get());
    out.put("rejected_429", rejected.get());
    long tokens = all.stream().mapToLong(Sample::tokens).sum();
    out.put("output_tokens", tokens);
    out.put("output_tokens_per_s", tokens / wall);
    out.put("requests_per_s", all.size() / wall);
    percentiles(out.putObject("ttft_ms"), all.stream().mapToDouble(Sample::ttftMs).toArray());
    percentiles(out.putObject("tpot_ms"), all.stream().mapToDouble(Sample::tpotMs).filter(d -> !Double.isNaN(d))
        .toArray());
    String text = Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(out);
    System.out.println(text);
    if (args.length > 7) {
      Files.writeString(Path.of(args[7]), text + "\n");
    }
  }

  private static void percentiles(ObjectNode node, double[] values) {
    Arrays.sort(values);
    node.put("count", values.length);
    for (double p : new double[] {50, 90, 95, 99}) {
      node.put("p" + (int) p, values.length == 0 ? Double.NaN
          : values[Math.min(values.length - 1, (int) Math.ceil(p / 100 * values.length) - 1)]);
    }
    node.put("mean", Arrays.stream(values).average().orElse(Double.NaN));
  }

  // One streaming request; null when refused with 429 (after a short back-off).
  private static Sample one(HttpClient http, String url, String model, int[] prompt, int maxTokens,
      AtomicLong rejected) throws IOException, InterruptedException {
    ObjectNode body = Json.MAPPER.createObjectNode();
    body.put("model", model);
    ArrayNode ids = body.putArray("prompt");
    for (int id : prompt) {
      ids.add(id);
    }
    body.put("max_tokens", maxTokens);
    body.put("temperature", 0);
    body.put("ignore_eos", true);
    body.put("stream", true);
    body.putObject("stream_options").put("include_usage", true);
    long sent = System.nanoTime();
    HttpResponse<Stream<String>> r = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/completions"))
        .timeout(Duration.ofMinutes(10)).POST(HttpRequest.BodyPublishers.ofByteArray(Json.bytes(body))).build(),
        HttpResponse.BodyHandlers.ofLines());
    if (r.statusCode() == 429) {
      r.body().close();
      rejected.incrementAndGet();
      Thread.sleep(200);
      return null;
    }
    if (r.statusCode() != 200) {
      r.body().close();
      throw new IOException("HTTP " + r.statusCode());
    }
    long first = -1;
    long last = -1;
    int tokens = -1;
    try (Stream<String> lines = r.body()) {
      for (Iterator<String> it = lines.iterator(); it.hasNext();) {
        String line = it.next();
        if (!line.startsWith("data: ") || line.equals("data: [DONE]")) {
          continue;
        }
        JsonNode chunk = Json.MAPPER.readTree(line.substring(6));
        if (chunk.has("error")) {
          throw new IOException("stream error: " + chunk.get("error"));
        }
        JsonNode usage = chunk.get("usage");
        if (usage != null && usage.isObject()) {
          tokens = usage.get("completion_tokens").asInt();
        } else if (chunk.path("choices").size() > 0 && !chunk.at("/choices/0/text").asText("").isEmpty()) {
          long now = System.nanoTime();
          if (first < 0) {
            first = now;
          }
          last = now;
        }
      }
    }
    if (first < 0 || tokens < 0) {
      throw new IOException("a stream without tokens or usage");
    }
    double ttft = (first - sent) / 1e6;
    double tpot = tokens > 1 ? (last - first) / 1e6 / (tokens - 1) : Double.NaN;
    return new Sample(ttft, tpot, tokens);
  }
}
