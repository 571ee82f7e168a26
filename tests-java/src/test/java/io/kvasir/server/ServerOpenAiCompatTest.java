package io.kvasir.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The official {@code openai} npm client (7.55.0, tools/compat) against the server: a chat
 * completion, a streaming one with usage, and a 400 it must surface as BadRequestError with the
 * field. Skips, saying why, when node or the installed package is missing
 * ({@code tools/compat/install.sh} installs it).
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ServerOpenAiCompatTest {
  @TempDir
  Path cache;

  private static Path compatDir() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      if (Files.isRegularFile(dir.resolve("tools/compat/openai_compat.mjs"))) {
        return dir.resolve("tools/compat");
      }
    }
    return null;
  }

  private static boolean nodePresent() {
    try {
      Process p = new ProcessBuilder("node", "--version").redirectErrorStream(true).start();
      p.getInputStream().readAllBytes();
      return p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0;
    } catch (IOException | InterruptedException e) {
      return false;
    }
  }

  @Test
  void officialClient() throws Exception {
    Path compat = compatDir();
    assumeTrue(compat != null, "tools/compat not found above the working directory");
    assumeTrue(nodePresent(), "node is not installed: skipping the openai npm client test");
    assumeTrue(Files.isRegularFile(compat.resolve("node_modules/openai/package.json")),
        "the openai npm package is not installed: run tools/compat/install.sh");
    System.setProperty("kvasir.cache", cache.toString());
    try (ServerFixture fx = new ServerFixture(4, 16, 16, 1 << 20)) {
      Process p = new ProcessBuilder(List.of("node", compat.resolve("openai_compat.mjs").toString(),
          "http://127.0.0.1:" + fx.server.port() + "/v1", ServerFixture.MODEL)).redirectErrorStream(false).start();
      byte[] stdout = p.getInputStream().readAllBytes();
      String stderr = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
      assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the node script did not finish");
      String text = new String(stdout, StandardCharsets.UTF_8).trim();
      assertEquals(0, p.exitValue(), "openai_compat.mjs failed: " + text + "\n" + stderr);
      JsonNode out = ServerFixture.json(text);
      assertTrue(out.get("ok").asBoolean(), text);
      assertEquals("chat.completion", out.at("/chat/object").asText());
      assertEquals(out.at("/chat/content").asText(), out.at("/stream/content").asText());
      assertEquals(400, out.at("/error/status").asInt());
      assertEquals("temperature", out.at("/error/param").asText());
    } finally {
      System.clearProperty("kvasir.cache");
    }
  }
}
