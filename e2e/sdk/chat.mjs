// chat.mjs runs the official OpenAI Node SDK, unchanged, against the gateway:
// one chat completion without and one with stream: true (the client does
// not set stream_options: the gateway asks for the usage chunk). It prints
// one JSON object on stdout:
//
//   {"sdk_version": "...",
//    "plain":  {"id", "model", "content", "finish_reason", "usage"},
//    "stream": {"model", "content", "chunks", "finish_reason", "usage"}}
//
// Environment: OPENAI_SDK_DIR, the folder the openai package is installed
// in (its node_modules); GATEWAY_BASE_URL, the SDK's baseURL (the gateway
// listener's /v1). Run by e2e/sdk_test.go.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.OPENAI_SDK_DIR;
const baseURL = process.env.GATEWAY_BASE_URL;
if (!dir || !baseURL) {
  console.error('chat.mjs: set OPENAI_SDK_DIR and GATEWAY_BASE_URL');
  process.exit(2);
}
const { OpenAI } = createRequire(join(dir, 'package.json'))('openai');
const sdkVersion = JSON.parse(readFileSync(join(dir, 'node_modules', 'openai', 'package.json'), 'utf8')).version;

// The key is the client's own: the gateway replaces it with the configured one.
const client = new OpenAI({ apiKey: 'sk-sdk-client-key', baseURL, maxRetries: 0, timeout: 10000 });
const messages = [
  { role: 'system', content: 'You are a mathematician' },
  { role: 'user', content: 'What is 1+1?' },
];

const plain = await client.chat.completions.create({ model: 'gpt-3.5-turbo', messages });

const stream = await client.chat.completions.create({ model: 'gpt-3.5-turbo', messages, stream: true });
let content = '';
let chunks = 0;
let usage = null;
let finishReason = null;
let model = null;
for await (const chunk of stream) {
  chunks++;
  model = chunk.model;
  for (const choice of chunk.choices) {
    if (choice.delta?.content) content += choice.delta.content;
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  if (chunk.usage) usage = chunk.usage;
}

console.log(JSON.stringify({
  sdk_version: sdkVersion,
  plain: {
    id: plain.id,
    model: plain.model,
    content: plain.choices[0]?.message?.content ?? null,
    finish_reason: plain.choices[0]?.finish_reason ?? null,
    usage: plain.usage ?? null,
  },
  stream: { model, content, chunks, finish_reason: finishReason, usage },
}));
