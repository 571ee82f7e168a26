package io.kvasir.engine;

import io.kvasir.model.tokenizer.ChatMessage;
import io.kvasir.model.tokenizer.ChatTemplate;
import io.kvasir.model.tokenizer.SpecialTokens;
import io.kvasir.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;

/** The engine's text codec over a model directory's Hugging Face tokenizer and special tokens. */
final class HfTextCodec implements TextCodec {
  private final Tokenizer tokenizer;
  private final SpecialTokens special;
  private final Path dir;
  private ChatTemplate template;  // parsed on first use: most runs never chat

  private HfTextCodec(Tokenizer tokenizer, SpecialTokens special, Path dir) {
    this.tokenizer = tokenizer;
    this.special = special;
    this.dir = dir;
  }

  static HfTextCodec load(Path dir) throws IOException {
    Tokenizer t = Tokenizer.load(dir);
    try {
      return new HfTextCodec(t, SpecialTokens.load(dir, t), dir);
    } catch (IOException | RuntimeException e) {
      t.close();
      throw e;
    }
  }

  Tokenizer tokenizer() {
    return tokenizer;
  }

  @Override
  public int[] encode(String text) {
    return tokenizer.encode(text);
  }

  @Override
  public synchronized int[] encodeChat(List<ChatMessage> messages) {
    if (template == null) {
      try {
        template = ChatTemplate.load(dir);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return tokenizer.encodeNoSpecial(template.render(messages, true));
  }

  @Override
  public String decode(int[] tokens) {
    return tokenizer.decode(tokens, true);
  }

  @Override
  public TextCodec.Detokenizer newDetokenizer(int[] promptTokens) {
    // The tokenizer's own Detokenizer (this class's "Detokenizer" is the TextCodec interface).
    io.kvasir.model.tokenizer.Detokenizer d = tokenizer.detokenizer(promptTokens, true);
    return new TextCodec.Detokenizer() {
      @Override
      public String push(int token) {
        return d.add(token);
      }

      @Override
      public String flush() {
        return d.flush();
      }
    };
  }

  @Override
  public int[] eosTokenIds() {
    return special.eosIds();
  }

  @Override
  public void close() {
    tokenizer.close();
  }
}
