package io.kvasir.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.Test;

/** The policy spec syntax: parsing, defaults, canonical text, and every error naming its cause. */
class PolicyTest {
  private static final Logger LOG = LogManager.getLogger(PolicyTest.class);

  @Test
  void aSpecFillsTheAxesItLeavesOutWithTheDefaults() {
    Policy p = Policy.parse("quest:k=64");
    assertEquals("quest", p.placement().name());
    assertEquals(64, p.placement().intValue("k", 0));
    assertEquals(-1, p.placement().intValue("k_tokens", -1), "absent parameters give the fallback");
    assertEquals("bf16", p.format().name());
    assertTrue(p.eviction().isEmpty());
    assertTrue(p.prefixCache(), "prefix caching is on by default");
    assertEquals("quest:k=64", p.spec());
    assertEquals("bf16+quest:k=64+prefix", p.resolved());

    Policy full = Policy.defaults();
    assertEquals("full", full.spec());
    assertEquals("bf16+full+prefix", full.resolved());
    assertEquals(full, Policy.parse(" bf16 + full "), "whitespace and explicit defaults change nothing");

    Policy off = p.withoutPrefixCache();
    assertFalse(off.prefixCache());
    assertEquals("bf16+quest:k=64", off.resolved());
    assertEquals("quest:k=64", off.spec());
  }

  @Test
  void listsAreSeparatedBySemicolons() {
    List<Policy> list = Policy.parseList("full; quest:k_tokens=1024 ;quest:k=8+bf16");
    assertEquals(3, list.size());
    assertEquals("full", list.get(0).spec());
    assertEquals(1024, list.get(1).placement().intValue("k_tokens", 0));
    assertEquals("quest:k=8+bf16", list.get(2).spec());
  }

  @Test
  void randomValidSpecsRoundTripThroughTheirCanonicalText() {
    long seed = new SplittableRandom().nextLong();
    LOG.info("policy round trip: seed {}", seed);
    SplittableRandom rng = new SplittableRandom(seed);
    for (int i = 0; i < 500; ++i) {
      List<String> parts = new ArrayList<>();
      if (rng.nextBoolean()) {
        parts.add("bf16");
      }
      switch (rng.nextInt(4)) {
        case 0 -> parts.add("full");
        case 1 -> parts.add("quest:k=" + rng.nextInt(1, 1 << 20));
        case 2 -> parts.add("quest:k_tokens=" + rng.nextInt(1, 1 << 30));
        default -> { }
      }
      if (rng.nextBoolean()) {
        parts.add("prefix");
      }
      if (parts.isEmpty()) {
        parts.add("full");
      }
      java.util.Collections.shuffle(parts, new java.util.Random(rng.nextLong()));
      String spec = String.join(rng.nextBoolean() ? "+" : " + ", parts);
      Policy p = Policy.parse(spec);
      assertEquals(spec.replace(" ", ""), p.spec(), "seed " + seed);
      assertEquals(p, Policy.parse(p.spec()), "seed " + seed);
      assertEquals(p, Policy.parse(p.resolved()), "the resolved text is a spec of the same policy; seed " + seed);
    }
  }

  private static String error(String spec) {
    return assertThrows(PolicySpecException.class, () -> Policy.parse(spec)).getMessage();
  }

  @Test
  void errorsNameTheSpecTheComponentAndWhatIsValid() {
    String m = error("kitty:boost=0.25");
    assertTrue(m.contains("\"kitty:boost=0.25\"") && m.contains("unknown component \"kitty\"")
        && m.contains("bf16, full, quest, prefix"), m);
    m = error("quest:budget=3");
    assertTrue(m.contains("quest has no parameter \"budget\"") && m.contains("k, k_tokens"), m);
    m = error("full:k=3");
    assertTrue(m.contains("its parameters: none"), m);
    m = error("quest:k=0");
    assertTrue(m.contains("quest:k=0") && m.contains("[1, 1048576]"), m);
    m = error("quest:k=many");
    assertTrue(m.contains("k is an integer"), m);
    m = error("quest:k=4,k_tokens=64");
    assertTrue(m.contains("not both"), m);
    m = error("quest:k=4+full");
    assertTrue(m.contains("quest and full are both placement components"), m);
    m = error("quest:");
    assertTrue(m.contains("nothing after ':'"), m);
    m = error("quest:k");
    assertTrue(m.contains("\"k\" is not param=value"), m);
    m = error("quest:k=1,k=2");
    assertTrue(m.contains("k is given twice"), m);
    m = error("quest++bf16");
    assertTrue(m.contains("component 2 is empty"), m);
    m = error("Quest");
    assertTrue(m.contains("not a component name"), m);
    m = assertThrows(PolicySpecException.class, () -> Policy.parse(" ")).getMessage();
    assertTrue(m.contains("empty policy spec") && m.contains("components: "), m);
    m = assertThrows(PolicySpecException.class, () -> Policy.parseList("full;;quest")).getMessage();
    assertTrue(m.contains("policy 2 is empty"), m);
  }
}
