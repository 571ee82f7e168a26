package io.kvasir.policy.spi;

/** How a page stores K and V; only bf16 exists today (Kitty and KIVI add quantized formats). */
public enum PageFormat {
  BF16
}
