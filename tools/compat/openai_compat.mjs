// The official openai client against a Kvasir server: a chat completion, a streaming chat
// completion with usage, and an error case. Prints one JSON object; exits 0 when every case
// behaved as OpenAI's API would, 1 otherwise. Usage: node openai_compat.mjs BASE_URL MODEL
import OpenAI from 'openai';

const [baseURL, model] = process.argv.slice(2);
if (!baseURL || !model) {
  console.error('usage: node openai_compat.mjs BASE_URL MODEL   (BASE_URL like http://127.0.0.1:8000/v1)');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
const messages = [{ role: 'user', content: 'Say something.' }];
const out = { client: 'openai-node', version: OpenAI.VERSION ?? null };
let ok = true;

try {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
  out.chat = { object: r.object, content: r.choices[0].message.content, role: r.choices[0].message.role,
    finish_reason: r.choices[0].finish_reason, usage: r.usage };
  ok &&= r.object === 'chat.completion' && typeof r.choices[0].message.content === 'string'
    && r.usage.completion_tokens > 0;
} catch (e) {
  out.chat = { error: String(e) };
  ok = false;
}

try {
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0,
    stream: true, stream_options: { include_usage: true } });
  let content = '';
  let chunks = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      content += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  out.stream = { chunks, content, finish_reason: finish, usage };
  ok &&= chunks > 1 && finish !== null && usage !== null && content === out.chat?.content;
} catch (e) {
  out.stream = { error: String(e) };
  ok = false;
}

try {
  await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: -1 });
  out.error = { unexpected: 'no error' };
  ok = false;
} catch (e) {
  out.error = { status: e.status ?? null, type: e.type ?? null, param: e.param ?? null, code: e.code ?? null,
    message: e.message, is_bad_request: e instanceof OpenAI.BadRequestError };
  ok &&= e.status === 400 && e.param === 'temperature' && e instanceof OpenAI.BadRequestError;
}

out.ok = ok;
console.log(JSON.stringify(out));
process.exit(ok ? 0 : 1);
