package io.kvasir.engine;

/** Receives generated tokens as they are produced (on the engine's thread: keep it quick). */
@FunctionalInterface
public interface TokenListener {
  /**
   * @param token     the token id
   * @param textDelta the new text it completes (may be empty while a multi-byte character is
   *                  incomplete); null when the engine has no tokenizer
   */
  void onToken(int token, String textDelta);
}
