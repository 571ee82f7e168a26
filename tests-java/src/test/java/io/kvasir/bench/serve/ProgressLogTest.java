package io.kvasir.bench.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.engine.TokenListener;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Progress lines: at most one per interval, one at the end, requests counted at their last token. */
class ProgressLogTest {
  @Test
  void linesAreThrottledAndTheLastOneAlwaysComes() {
    long[] now = {0};
    long s = 1_000_000_000L;
    ProgressLog p = new ProgressLog("offline / full", 4, 5.0, () -> now[0]);
    List<TokenListener> ls = p.listeners(List.of(2, 1, 3, 1));
    ls.get(0).onToken(1, null);
    assertEquals(0, p.done(), "one of two tokens");
    now[0] = 2 * s;
    ls.get(0).onToken(1, null);  // done 1 at 2 s: within the interval, no line
    assertEquals(1, p.done());
    assertTrue(p.lines().isEmpty(), p.lines().toString());
    now[0] = 6 * s;
    ls.get(1).onToken(1, null);  // done 2 at 6 s: a line, ETA 6 s
    assertEquals(List.of("offline / full: 2/4 requests done, 6.0 s elapsed, ETA 6.0 s"), p.lines());
    now[0] = 7 * s;
    ls.get(3).onToken(1, null);  // done 3 at 7 s: 1 s after the last line, none
    ls.get(2).onToken(1, null);
    ls.get(2).onToken(1, null);
    assertEquals(1, p.lines().size());
    ls.get(2).onToken(1, null);  // the last request: always a line
    assertEquals(2, p.lines().size());
    assertEquals("offline / full: 4/4 requests done, 7.0 s elapsed, ETA 0.0 s", p.lines().get(1));
  }
}
