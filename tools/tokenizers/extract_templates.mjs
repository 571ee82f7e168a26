// Writes real chat templates out of @huggingface/ollama-utils' table (src/chat-template-automap.ts)
// as one .jinja file each. The package does not export the table from its entry point, and its
// entry point needs @huggingface/jinja, so the array literal is evaluated on its own: it is plain
// data (object, array and string literals), run in an empty context.
//
//   node extract_templates.mjs <chat-template-automap.ts> <out dir>
import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";

// Our name -> the table's model key. The GGUF field holds the chat_template of the model's
// tokenizer_config.json as published by its authors.
const WANTED = {
  llama3_1: "library/llama3.1:8b",
  llama3_2: "library/llama3.2:3b",
  qwen3: "library/qwen3:0.6b",
};

const [src, outDir] = process.argv.slice(2);
if (!src || !outDir) {
  console.error("usage: node extract_templates.mjs <chat-template-automap.ts> <out dir>");
  process.exit(2);
}
const text = fs.readFileSync(src, "utf8");
const marker = text.indexOf("export const OLLAMA_CHAT_TEMPLATE_MAPPING");
if (marker < 0) throw new Error(`${src}: OLLAMA_CHAT_TEMPLATE_MAPPING not found`);
let literal = text.slice(text.indexOf("=", marker) + 1).trim();
if (literal.endsWith(";")) literal = literal.slice(0, -1);
const table = vm.runInNewContext(`(${literal})`, Object.create(null), { timeout: 5000 });

for (const [name, model] of Object.entries(WANTED)) {
  const entry = table.find((e) => e.model === model);
  if (!entry || typeof entry.gguf !== "string") throw new Error(`${src}: no template for ${model}`);
  fs.writeFileSync(path.join(outDir, `${name}.jinja`), entry.gguf);
  console.error(`[tokenizers] chat-templates/${name}.jinja <- ${model} (${entry.gguf.length} chars)`);
}
