package io.kvasir.engine;

/**
 * Text on either side of the model: a tokenizer seen from the engine. Implemented over the
 * Hugging Face tokenizer of a model directory.
 */
public interface TextCodec extends AutoCloseable {
  /** Token ids of a text, with special tokens as the tokenizer's post-processor adds them. */
  int[] encode(String text);

  /**
   * Ids of a conversation rendered by the model's chat template, with the generation prompt.
   *
   * @throws io.kvasir.model.CheckpointException when the model has no chat template
   */
  int[] encodeChat(java.util.List<io.kvasir.model.tokenizer.ChatMessage> messages);

  /** The text of token ids. */
  String decode(int[] tokens);

  /**
   * Decodes a stream of generated tokens piece by piece without splitting multi-byte
   * characters; the prompt gives the decoder its context (leading spaces, merges).
   */
  Detokenizer newDetokenizer(int[] promptTokens);

  /** Tokens that end a generation (the model's EOS ids). */
  int[] eosTokenIds();

  @Override
  void close();

  /** Incremental decoding of one generation. */
  interface Detokenizer {
    /** Text completed by this token (may be empty). */
    String push(int token);

    /** Whatever text is still held back at the end. */
    String flush();
  }
}
