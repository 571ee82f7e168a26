/**
 * Text in and out of a model: tokenization, streaming detokenization, special tokens and chat
 * templates of a Hugging Face model directory.
 *
 * <p>{@link io.kvasir.model.tokenizer.Tokenizer} runs {@code tokenizer.json} through the Hugging
 * Face tokenizers library (DJL's binding, CPU build bundled in its jar; offline mode is forced so
 * it never downloads a CUDA build), and its {@link io.kvasir.model.tokenizer.Detokenizer} streams
 * generated ids as text without splitting characters.
 * {@link io.kvasir.model.tokenizer.SpecialTokens} and
 * {@link io.kvasir.model.tokenizer.GenerationDefaults} read {@code generation_config.json} and
 * {@code tokenizer_config.json}. {@link io.kvasir.model.tokenizer.ChatTemplate} renders the chat
 * template with Jinjava, extended (package-private {@code Py*} classes and
 * {@code Jinja2Whitespace}) until it renders like Python jinja2 under transformers' settings.
 *
 * <p>The tests hold all of this to independent implementations: token ids from the JavaScript
 * tokenizer of {@code @lenml/tokenizers} and renderings from Python jinja2, both produced by the
 * scripts in {@code tools/tokenizers/}.
 */
package io.kvasir.model.tokenizer;
