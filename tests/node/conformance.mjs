// Checks every answer the gateway gives the Node SDK against the published shape of its
// API surface (the JSON Schemas committed under tests/schemas, as tests/python/conformance.py
// does for the Python suites). `checkingFetch` is given to the SDK as its `fetch`: each
// answer's body is read on a copy and validated; `takeViolations()` waits for those checks
// and returns what broke a schema since it was last called.

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';

const SCHEMAS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'schemas');

const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
const validators = new Map();
const pending = [];
let violations = [];

function validator(name) {
  if (!validators.has(name)) {
    const schema = JSON.parse(readFileSync(join(SCHEMAS, `${name}.json`), 'utf8'));
    validators.set(name, ajv.compile(schema));
  }
  return validators.get(name);
}

function problems(name, value) {
  const validate = validator(name);
  if (validate(value)) return [];
  return validate.errors.slice(0, 5).map((e) => `${name} at ${e.instancePath || '(root)'}: ${e.message}`);
}

/** (json schema, sse schema, error schema) of the OpenAI routes the Node suite calls. */
function surface(method, path) {
  const routes = {
    'POST /v1/chat/completions': ['openai/chat_completion', 'openai/chat_completion_chunk'],
    'POST /v1/completions': ['openai/completion', 'openai/completion_chunk'],
    'POST /v1/embeddings': ['openai/embedding_list', null],
    'GET /v1/models': ['openai/model_list', null],
    'POST /v1/responses': ['openai/response', 'openai/response_stream_event'],
  };
  if (!path.startsWith('/v1/') || path.startsWith('/v1/messages')) return null;
  return [...(routes[`${method} ${path}`] || [null, null]), 'openai/error'];
}

function check(method, path, status, contentType, text) {
  const shapes = surface(method, path);
  if (!shapes) return [];
  const [jsonSchema, sseSchema, errorSchema] = shapes;
  const what = `${method} ${path} → ${status}`;
  const parsed = (raw) => {
    try {
      return [JSON.parse(raw), null];
    } catch (e) {
      return [null, `not JSON (${e.message}): ${raw.slice(0, 200)}`];
    }
  };
  if (status >= 400 || (status === 200 && !contentType.startsWith('text/event-stream'))) {
    const schema = status >= 400 ? errorSchema : jsonSchema;
    if (!schema) return [];
    const [value, bad] = parsed(text);
    return (bad ? [bad] : problems(schema, value)).map((p) => `${what}: ${p}`);
  }
  if (status !== 200 || !sseSchema) return [];
  const out = [];
  text.replace(/\r\n/g, '\n').split('\n\n').forEach((block, i) => {
    const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data || data === '[DONE]') return;
    const [event, bad] = parsed(data);
    if (bad) return out.push(`${what}: event ${i}: ${bad}`);
    const bareError = event && typeof event === 'object' && 'error' in event && !('type' in event);
    for (const p of problems(bareError ? errorSchema : sseSchema, event)) out.push(`${what}: event ${i}: ${p}`);
  });
  return out;
}

/** A `fetch` that validates every answer of the gateway at `rootUrl` on a copy of it. */
export function checkingFetch(rootUrl) {
  const origin = new URL(rootUrl).origin;
  return async (input, init) => {
    const response = await fetch(input, init);
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (url.origin !== origin) return response;
    const method = (init?.method || (typeof input === 'object' && 'method' in input ? input.method : 'GET')).toUpperCase();
    const copy = response.clone();
    pending.push(
      copy.text().then(
        (text) => {
          violations.push(...check(method, url.pathname, response.status, response.headers.get('content-type') || '', text));
        },
        () => {}, // the reader gave up on the answer: nothing whole to check
      ),
    );
    return response;
  };
}

/** The violations since the last call, once every answer read so far has been checked. */
export async function takeViolations() {
  await Promise.all(pending.splice(0));
  const out = violations;
  violations = [];
  return out;
}
