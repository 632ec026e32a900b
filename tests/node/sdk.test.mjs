// The official `openai` Node SDK (tests/node/package.json pins it) against the gateway,
// with the mock upstream behind it speaking each provider kind's own API. The SDK's
// stream helpers check the whole event sequence: they throw on a missing or misplaced
// event, which is what these tests rely on. Run by scripts/node-tests.sh.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { takeViolations } from './conformance.mjs';
import { PROVIDERS, startGateway, table, writeCompatSection } from './harness.mjs';

const ROWS = [
  'chat: `chat.completions.stream()` + `finalChatCompletion()`',
  'chat: `runTools()` round trip',
  'responses: `responses.stream()` + `finalResponse()`',
  'responses: stream with a function call, then its output',
  'embeddings: default base64, decoded',
];
const cells = {};

let gw;
let client;

before(async () => {
  gw = await startGateway();
  client = gw.client();
});

// Every answer of the test conforms to the published shape of its API (tests/schemas).
afterEach(async () => {
  assert.deepEqual(await takeViolations(), []);
});

after(async () => {
  if (gw) await gw.stop();
  const lines = [
    '## Official `openai` Node SDK',
    '',
    '`tests/node/sdk.test.mjs` (`node --test`): the SDK\'s own helpers, which throw unless the stream is complete and well formed.',
    '',
    ...table(Object.keys(PROVIDERS), ROWS, cells),
  ];
  writeCompatSection('node', lines.join('\n'));
});

/** A test filling the cell (row, provider): FAIL unless it finishes. */
function cell(row, provider, fn) {
  assert.ok(ROWS.includes(row), row);
  test(`${row} [${provider}]`, async (t) => {
    const key = `${row}|${provider}`;
    cells[key] = 'FAIL';
    cells[key] = (await fn(t)) ?? 'pass';
  });
}

const WEATHER_PARAMS = {
  type: 'object',
  properties: { city: { type: 'string' } },
  required: ['city'],
};

for (const [provider, model] of Object.entries(PROVIDERS)) {
  describe(`${provider} (${model})`, () => {
    cell(ROWS[0], provider, async () => {
      const messages = [{ role: 'user', content: 'Stream something' }];
      const whole = await client.chat.completions.create({ model, messages });
      const stream = client.chat.completions.stream({ model, messages, stream_options: { include_usage: true } });
      let deltas = '';
      stream.on('content.delta', ({ delta }) => { deltas += delta; });
      const final = await stream.finalChatCompletion();
      const text = final.choices[0].message.content;
      assert.ok(text, 'final message has text');
      assert.equal(deltas, text, 'content deltas concatenate to the final text');
      assert.equal(text, whole.choices[0].message.content, 'stream and non-stream answers agree');
      assert.equal(final.choices[0].finish_reason, 'stop');
      assert.ok(final.usage && final.usage.completion_tokens > 0 && final.usage.prompt_tokens > 0, 'usage in the final completion');
    });

    cell(ROWS[1], provider, async () => {
      const calls = [];
      const runner = client.chat.completions.runTools({
        model,
        messages: [{ role: 'user', content: 'Weather in Paris?' }],
        tools: [{
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Weather for a city',
            parameters: WEATHER_PARAMS,
            parse: JSON.parse,
            function: (args) => { calls.push(args); return { sky: 'clear', temperature_c: 21 }; },
          },
        }],
      });
      const content = await runner.finalContent();
      assert.deepEqual(calls, [{ city: 'mock' }], 'the tool ran once, with the mock\'s arguments');
      assert.ok(content && content.trim(), 'a text answer after the tool result');
      const roles = runner.messages.map((m) => m.role);
      assert.deepEqual(roles.slice(-3), ['assistant', 'tool', 'assistant'], `conversation: ${roles}`);
      // The Node SDK sends the assistant tool-call turn back with `content: null`.
      const final = await runner.finalChatCompletion();
      assert.equal(final.choices[0].finish_reason, 'stop');
    });

    cell(ROWS[2], provider, async () => {
      const input = 'Say something';
      const whole = await client.responses.create({ model, input });
      const stream = client.responses.stream({ model, input });
      const types = [];
      let deltas = '';
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === 'response.output_text.delta') deltas += event.delta;
      }
      const final = await stream.finalResponse();
      assert.equal(final.status, 'completed');
      assert.ok(final.id.startsWith('resp_'), final.id);
      assert.ok(final.output_text, 'final response has output_text');
      assert.equal(deltas, final.output_text, 'text deltas concatenate to output_text');
      assert.equal(final.output_text, whole.output_text, 'stream and non-stream answers agree');
      assert.ok(final.usage.input_tokens > 0 && final.usage.output_tokens > 0, 'usage');
      const expected = [
        'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
        'response.output_text.delta', 'response.output_text.done', 'response.content_part.done',
        'response.output_item.done', 'response.completed',
      ];
      const firstOfEach = expected.map((e) => types.indexOf(e));
      assert.ok(firstOfEach.every((i) => i >= 0), `missing events: ${expected.filter((e, i) => firstOfEach[i] < 0)}`);
      assert.deepEqual([...firstOfEach].sort((a, b) => a - b), firstOfEach, `events out of order: ${types}`);
      assert.equal(types.at(-1), 'response.completed');
    });

    cell(ROWS[3], provider, async () => {
      const tools = [{ type: 'function', name: 'get_weather', description: 'Weather for a city', parameters: WEATHER_PARAMS, strict: false }];
      const input = [{ role: 'user', content: 'Weather in Paris?' }];
      const first = await client.responses.stream({ model, input, tools }).finalResponse();
      const call = first.output.find((item) => item.type === 'function_call');
      assert.ok(call, `no function_call item in ${JSON.stringify(first.output)}`);
      assert.equal(call.name, 'get_weather');
      assert.deepEqual(JSON.parse(call.arguments), { city: 'mock' });
      assert.ok(call.call_id);
      const second = await client.responses.stream({
        model,
        tools,
        input: [...input, ...first.output, { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21 C' }],
      }).finalResponse();
      assert.ok(second.output_text, `no text after the tool output: ${JSON.stringify(second.output)}`);
      assert.ok(!second.output.some((item) => item.type === 'function_call'), 'no second tool call');
    });

    if (provider !== 'anthropic') {
      const embModel = provider === 'openai' ? 'text-embedding-3-small' : 'gemini-embedding-001';
      cell(ROWS[4], provider, async () => {
        const r = await client.embeddings.create({ model: embModel, input: ['first text', 'second text'] });
        assert.equal(r.data.length, 2);
        for (const [i, d] of r.data.entries()) {
          assert.equal(d.index, i);
          assert.ok(Array.isArray(d.embedding) && d.embedding.length > 0, 'decoded to an array of numbers');
          assert.ok(d.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
        }
        assert.ok(r.usage.prompt_tokens > 0);
      });
    } else {
      cell(ROWS[4], provider, async () => {
        await assert.rejects(
          client.embeddings.create({ model: 'claude-sonnet-4-5', input: 'text' }),
          (e) => e instanceof OpenAI.BadRequestError && e.status === 400,
        );
        return '400';
      });
    }
  });
}
