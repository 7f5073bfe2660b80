// Calls a running privserve with the official openai Node SDK and prints one JSON report
// on stdout; pytest (tests/integration/test_node_sdk.py) checks it.
// Env: PRIVSERVE_BASE_URL (ends in /v1), PRIVSERVE_KEY, CHAT_MODEL, EMBED_MODEL.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.PRIVSERVE_BASE_URL,
  apiKey: process.env.PRIVSERVE_KEY,
  maxRetries: 0,
  timeout: 120_000,
});
const chatModel = process.env.CHAT_MODEL;
const embedModel = process.env.EMBED_MODEL;
// A forced answer (the model repeats the line), so the plain and the streamed answer agree.
const line = "lemon castle rocket violin pencil thunder";
const messages = [
  { role: "system", content: "Answer briefly." },
  { role: "user", content: [{ type: "text", text: `Repeat exactly: ${line}\n${line}\n${line}\n` }] },
];

const report = {};

// Once first, so the plain and the streamed answer both start from the prompt already in
// the server's prefix cache: a prompt computed whole and one continued from the cache can
// differ in the last bits of their logits, and a greedy tie can then go either way.
await client.chat.completions.create({ model: chatModel, messages, max_tokens: 1, temperature: 0 });

const reply = await client.chat.completions.create({
  model: chatModel,
  messages,
  max_tokens: 8,
  temperature: 0,
});
report.chat = {
  content: reply.choices[0].message.content,
  finish_reason: reply.choices[0].finish_reason,
  usage: reply.usage,
};

const stream = await client.chat.completions.create({
  model: chatModel,
  messages,
  max_tokens: 8,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let chunks = 0;
let streamUsage = null;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.choices.length > 0) streamed += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) streamUsage = chunk.usage;
}
report.stream = { content: streamed, chunks, usage: streamUsage };

// The SDK asks for base64 when no format is given and decodes it itself.
const asBase64 = await client.embeddings.create({ model: embedModel, input: "hello world" });
const asFloat = await client.embeddings.create({
  model: embedModel,
  input: ["hello world"],
  encoding_format: "float",
});
report.embeddings = {
  base64: Array.from(asBase64.data[0].embedding),
  float: asFloat.data[0].embedding,
  usage: asFloat.usage,
};

try {
  await client.chat.completions.create({ model: "no-such-model", messages });
  report.error = null;
} catch (err) {
  report.error = { status: err.status, code: err.code, type: err.type, param: err.param };
}

process.stdout.write(JSON.stringify(report));
