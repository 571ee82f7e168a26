// Expected token ids for the Java tokenizer tests, from an independent implementation: the
// JavaScript tokenizer @lenml/tokenizers (a fork of transformers.js) under node, reading the same
// tokenizer.json / tokenizer_config.json that the Java side reads through Hugging Face tokenizers.
//
//   node expected_ids.mjs <cache dir> <out dir>      (regenerate.sh passes both)
//
// Writes <out dir>/<name>.ids.json for each tokenizer: the generator's name and version, the BOS/EOS
// tokens and ids and the vocabulary size it resolves, and per text the ids with special tokens
// (what the file's post-processor adds, e.g. BOS) and without.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [cacheDir, outDir] = process.argv.slice(2);
if (!cacheDir || !outDir) {
  console.error("usage: node expected_ids.mjs <cache dir> <out dir>");
  process.exit(2);
}
// The JS tokenizer lives in the cache (fetch.sh --with-js), never in the repository.
const require = createRequire(path.join(cacheDir, "node", "index.js"));
const { TokenizerLoader } = require("@lenml/tokenizers");
const generator = JSON.parse(
  fs.readFileSync(path.join(cacheDir, "node", "node_modules", "@lenml", "tokenizers", "package.json"), "utf8"),
);

const TOKENIZERS = ["qwen3", "llama3", "llama3_1"];

// Each text names what it exercises; the Java test prints the name on a mismatch.
const TEXTS = [
  ["empty", ""],
  ["ascii sentence", "The quick brown fox jumps over the lazy dog."],
  ["greeting", "Hello, world!"],
  ["leading and trailing spaces", "  two leading, one trailing "],
  ["space runs", "a  b   c    d     e"],
  ["tabs", "tabs\there\t\tand\t\t\tmore\t"],
  ["newlines", "line one\nline two\n\nline four\n\n\n"],
  ["crlf and cr", "windows\r\nline\rold mac\r\n\r\n"],
  ["whitespace only", "   \n  \t \n\t\t  "],
  ["indented code", "def f(x):\n    return x**2 + 1  # square\n\n\nprint(f(3))\n"],
  ["c code", "for (int i = 0; i < n; ++i) { a[i] = b[i] << 2; }"],
  ["json", '{"name": "kvasir", "ids": [1, 22, 333], "ok": true}'],
  ["numbers", "1234567890 3.14159 -42 1,000,000 2026-11-29 0x1F 1e-9"],
  ["contractions", "I'm sure you're right; they'll say we've done it, she'd agree. DON'T"],
  ["url and email", "https://example.com/path?q=1&r=2#frag user@example.org"],
  ["chinese", "你好，世界！今天天气很好。"],
  ["japanese", "こんにちは世界、カタカナとひらがなと漢字。"],
  ["korean", "안녕하세요 세계"],
  ["rtl and indic", "مرحبا بالعالم — שלום עולם — नमस्ते दुनिया — สวัสดีชาวโลก"],
  ["accents", "Crème brûlée à la française, naïve café, Ångström, Straße, Øresund"],
  ["combining marks", "e\u0301 a\u0308 n\u0303 Z\u0351\u0336a\u0337\u0324l\u0328g\u0334o"],
  ["emoji", "I ❤️ 🦀 and 🚀🚀🚀!"],
  ["emoji sequences", "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇯🇵🇳🇴"],
  ["symbols", "∑ ∫ √2 ≈ 1.414 ⟨x⟩ “quotes” ‘single’ … «guillemets» ©®™"],
  // No U+FEFF: JavaScript's \s counts it as whitespace (Rust's regex, which Hugging Face
  // tokenizers uses, does not), so the two split " \ufeffbom" differently.
  ["zero width and format characters", "zero\u200bwidth soft\u00adhyphen nbsp\u00a0here joiner\u200dx"],
  ["repeats", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa !!!!!!!??? ....... ------"],
  ["chatml tokens", "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"],
  ["llama3 tokens", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"],
  ["end of text in text", "before <|endoftext|> after <|end_of_text|> done"],
  ["think tags", "<think>\nreasoning\n</think>\n\nanswer"],
];

fs.mkdirSync(outDir, { recursive: true });
for (const name of TOKENIZERS) {
  const dir = path.join(cacheDir, name);
  const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  const source = fs.readFileSync(path.join(dir, ".source"), "utf8").trim();
  const tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: read("tokenizer.json"),
    tokenizerConfig: read("tokenizer_config.json"),
  });
  const cases = TEXTS.map(([label, text]) => ({
    label,
    text,
    ids: Array.from(tokenizer.encode(text, { add_special_tokens: true })),
    ids_no_special: Array.from(tokenizer.encode(text, { add_special_tokens: false })),
  }));
  const out = {
    tokenizer: name,
    source,
    generator: `${generator.name}@${generator.version} (node ${process.version})`,
    script: "tools/tokenizers/expected_ids.mjs",
    // What the JS tokenizer resolves from tokenizer_config.json, and its number of ids.
    special: {
      bos_token: tokenizer.bos_token ?? null,
      bos_token_id: tokenizer.bos_token_id ?? null,
      eos_token: tokenizer.eos_token ?? null,
      eos_token_id: tokenizer.eos_token_id ?? null,
    },
    vocab_size: tokenizer.model.vocab.length,
    cases,
  };
  const file = path.join(outDir, `${name}.ids.json`);
  fs.writeFileSync(file, render(out));
  console.error(`[tokenizers] ${file}: ${cases.length} texts`);
}

// One case per line keeps the fixtures small and their diffs readable.
function render(out) {
  const head = Object.entries(out)
    .filter(([k]) => k !== "cases")
    .map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  const cases = out.cases.map((c) => `    ${JSON.stringify(c)}`).join(",\n");
  return `{\n${head.join("\n")}\n  "cases": [\n${cases}\n  ]\n}\n`;
}
