package io.kvasir.bench.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.engine.FinishReason;
import io.kvasir.engine.GenerationResult;
import io.kvasir.engine.GenerationStats;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Goodput as vLLM defines it, on hand-made requests. */
class SloTest {
  // ttft and decode in ms; tokens generated.
  private static GenerationResult req(double ttft, double decode, int tokens) {
    GenerationStats s = new GenerationStats(10, tokens, ttft, decode, 0, 0, null);
    return new GenerationResult(new int[tokens], null, FinishReason.LENGTH, s, null);
  }

  @Test
  void goodputCountsRequestsMeetingEverySlo() {
    List<GenerationResult> rs = List.of(
        req(1500, 900, 10),   // TPOT 100: on the bound, meets
        req(2500, 90, 10),    // TTFT over
        req(100, 1010, 11),   // TPOT 101: over
        req(2000, 0, 1),      // one token: no TPOT, TTFT on the bound
        req(10, 99, 100));    // TPOT 1: meets
    Slo slo = Slo.parse("ttft_ms=2000,tpot_ms=100");
    Slo.Goodput g = slo.goodput(rs, 4.0);
    assertEquals(3, g.requestsMet());
    assertEquals(5, g.requests());
    assertEquals(0.75, g.requestsPerSecond(), 1e-12);
    assertEquals(0.6, g.fractionMet(), 1e-12);
    // An end-to-end objective alone: latencies 2400, 2590, 1110, 2000, 109.
    Slo.Goodput e2e = Slo.parse("e2el_ms=2000").goodput(rs, 2.0);
    assertEquals(3, e2e.requestsMet());
    assertEquals(1.5, e2e.requestsPerSecond(), 1e-12);
    assertEquals(Map.of("ttft_ms", 2000.0, "tpot_ms", 100.0), slo.asMap());
    assertNull(Slo.parse("tpot=5").ttftMillis());
  }

  @Test
  void malformedSlosAreRefused() {
    for (String bad : new String[] {"ttft_ms", "ttft_ms=x", "itl_ms=5", "ttft_ms=-1", "ttft_ms=0"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Slo.parse(bad), bad);
      assertTrue(e.getMessage().contains("SLO") || e.getMessage().contains("--slo"), e.getMessage());
    }
  }
}
