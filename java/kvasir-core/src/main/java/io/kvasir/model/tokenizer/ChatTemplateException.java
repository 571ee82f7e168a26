package io.kvasir.model.tokenizer;

/**
 * A chat template that cannot be rendered: it calls {@code raise_exception} (the message is the
 * template's own, such as "Conversation roles must alternate user/assistant/..."), or it does
 * not parse, or its evaluation fails. The message names the template's source file.
 */
public class ChatTemplateException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ChatTemplateException(String message) {
    super(message);
  }

  public ChatTemplateException(String message, Throwable cause) {
    super(message, cause);
  }
}
