package io.kvasir.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * A byte-level tokenizer for the project's tiny demo models: 256 byte tokens (no merges) plus
 * three special tokens, written as a Hugging Face {@code tokenizer.json} with a
 * {@code tokenizer_config.json} holding a small chat template. Any text encodes (one token per
 * UTF-8 byte) and any token sequence decodes, so a random-weight model can show the text path
 * end to end; the output is noise, as the model card says.
 */
public final class ByteTokenizerFiles {
  /** Vocabulary size: 256 bytes, then begin-of-text, end-of-text, end-of-turn. */
  public static final int VOCAB_SIZE = 259;
  public static final int BOS_ID = 256;
  public static final int EOS_ID = 257;
  public static final String BOS = "<|begin_of_text|>";
  public static final String EOS = "<|end_of_text|>";
  public static final String EOT = "<|eot|>";

  private static final String CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n"
      + "{{ m['content'] | trim }}<|eot|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

  private ByteTokenizerFiles() {}

  /**
   * GPT-2's byte-to-character map (used by every byte-level BPE): printable bytes stand for
   * themselves, the others for code points from 256 up, so every token is visible text.
   */
  static char[] byteToChar() {
    char[] map = new char[256];
    boolean[] printable = new boolean[256];
    for (int b = '!'; b <= '~'; b++) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
    int next = 256;
    for (int b = 0; b < 256; b++) map[b] = printable[b] ? (char) b : (char) next++;
    return map;
  }

  /** Writes tokenizer.json and tokenizer_config.json into {@code dir}. */
  public static void write(Path dir) throws IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode root = json.createObjectNode();
    root.put("version", "1.0");
    root.putNull("truncation");
    root.putNull("padding");
    ArrayNode added = root.putArray("added_tokens");
    List<String> specials = List.of(BOS, EOS, EOT);
    for (int i = 0; i < specials.size(); i++) {
      ObjectNode t = added.addObject();
      t.put("id", 256 + i).put("content", specials.get(i)).put("single_word", false).put("lstrip", false)
          .put("rstrip", false).put("normalized", false).put("special", true);
    }
    root.putNull("normalizer");
    ObjectNode pre = root.putObject("pre_tokenizer");
    pre.put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true).put("use_regex", true);
    // BOS first, as Llama 3's post-processor does.
    ObjectNode post = root.putObject("post_processor");
    post.put("type", "TemplateProcessing");
    ArrayNode single = post.putArray("single");
    single.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 0);
    single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
    ArrayNode pair = post.putArray("pair");
    pair.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 0);
    pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
    pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
    ObjectNode bos = post.putObject("special_tokens").putObject(BOS);
    bos.put("id", BOS);
    bos.putArray("ids").add(BOS_ID);
    bos.putArray("tokens").add(BOS);
    ObjectNode decoder = root.putObject("decoder");
    decoder.put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true).put("use_regex", true);
    ObjectNode model = root.putObject("model");
    model.put("type", "BPE").putNull("dropout").putNull("unk_token").putNull("continuing_subword_prefix")
        .putNull("end_of_word_suffix").put("fuse_unk", false).put("byte_fallback", false).put("ignore_merges", false);
    ObjectNode vocab = model.putObject("vocab");
    char[] map = byteToChar();
    for (int b = 0; b < 256; b++) vocab.put(String.valueOf(map[b]), b);
    model.putArray("merges");
    json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("tokenizer.json").toFile(), root);

    ObjectNode config = json.createObjectNode();
    config.put(TinyCheckpoints.NOTE_FIELD, "byte-level tokenizer of a random-weight demo model");
    config.put("bos_token", BOS);
    config.put("eos_token", EOS);
    config.put("chat_template", CHAT_TEMPLATE);
    config.put("tokenizer_class", "PreTrainedTokenizerFast");
    json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("tokenizer_config.json").toFile(), config);
  }
}
