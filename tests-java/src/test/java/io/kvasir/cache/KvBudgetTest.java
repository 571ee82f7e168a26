package io.kvasir.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Budgets in bytes or tokens, converted to pages by hand-computed cases. */
class KvBudgetTest {
  // Llama-3-8B shapes: 32 layers, 8 KV heads of 128, bf16: 128 KiB per token, 2 MiB per 16-token page.
  private static final PageLayout LLAMA3_8B = new PageLayout(16, 32, 8, 128);

  @Test
  void pageSizesFollowTheShape() {
    assertEquals(131_072, LLAMA3_8B.bytesPerToken());
    assertEquals(2_097_152, LLAMA3_8B.bytesPerPage());
    assertEquals(2, LLAMA3_8B.pagesForTokens(17));
    assertEquals(1, LLAMA3_8B.pagesForTokens(16));
    // kvasir-ref: 6 layers, 2 KV heads of 64: 3 KiB per token.
    assertEquals(3072, new PageLayout(16, 6, 2, 64).bytesPerToken());
  }

  @Test
  void bytesAndTokensParseWithDecimalAndBinaryPrefixes() {
    assertEquals(KvBudget.ofBytes(24L << 30), KvBudget.parse("24GiB"));
    assertEquals(KvBudget.ofBytes(512_000_000), KvBudget.parse("512MB"));
    assertEquals(KvBudget.ofBytes(1_500_000_000), KvBudget.parse("1.5 GB"));
    assertEquals(KvBudget.ofBytes(65_536), KvBudget.parse("65536"));
    assertEquals(KvBudget.ofTokens(131_072), KvBudget.parse("131072tokens"));
    assertEquals(KvBudget.ofTokens(128_000), KvBudget.parse("128Ktok"));
    assertEquals(KvBudget.ofTokens(131_072), KvBudget.parse("128Kitokens"));
  }

  @Test
  void budgetsBecomeWholePages() {
    assertEquals(12_288, KvBudget.parse("24GiB").pages(LLAMA3_8B), "24 GiB / 2 MiB");
    assertEquals(1, KvBudget.parse("3MiB").pages(LLAMA3_8B), "rounded down: a partial page is no page");
    assertEquals(8_192, KvBudget.parse("131072tokens").pages(LLAMA3_8B), "131072 / 16");
    assertEquals(2, KvBudget.parse("17tokens").pages(LLAMA3_8B), "rounded up: 17 tokens need two pages");
    assertEquals(2L * 2_097_152, KvBudget.parse("17tokens").bytes(LLAMA3_8B));
  }

  @Test
  void badBudgetsNameTheProblem() {
    String m = assertThrows(IllegalArgumentException.class, () -> KvBudget.parse("24 pages")).getMessage();
    assertTrue(m.contains("\"24 pages\"") && m.contains("tokens"), m);
    m = assertThrows(IllegalArgumentException.class, () -> KvBudget.parse("0.5")).getMessage();
    assertTrue(m.contains("out of range"), m);
    m = assertThrows(IllegalArgumentException.class, () -> KvBudget.parse("1MiB").pages(LLAMA3_8B)).getMessage();
    assertTrue(m.contains("holds no page of 2097152 bytes"), m);
    assertThrows(IllegalArgumentException.class, () -> new PageLayout(0, 1, 1, 1));
  }
}
