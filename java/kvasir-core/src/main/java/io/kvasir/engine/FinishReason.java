package io.kvasir.engine;

/** Why a generation ended, with the OpenAI names. */
public enum FinishReason {
  /** An EOS or stop token, or a stop string. */
  STOP("stop"),
  /** max_tokens, or the context was full. */
  LENGTH("length"),
  /**
   * Cancelled before it ended ({@link RequestHandle#cancel}, or {@link EngineLoop#shutdown} past
   * its deadline); vLLM's name.
   */
  CANCELLED("abort");

  private final String openAiName;

  FinishReason(String openAiName) {
    this.openAiName = openAiName;
  }

  public String openAiName() {
    return openAiName;
  }
}
