// tests/e2e/gateway.test.mjs - `kt gateway run` as the official openai client sees it
// SPDX-License-Identifier: Apache-2.0
//
// The product page's config with the stand-in as upstream. Policy behaviour is tested
// elsewhere; here only the gateway's HTTP contract: relaying, streaming, errors, limits,
// timeouts, run tags, headers, keep-alive and concurrency.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';

import {
    startUpstream, startGateway, client, rawRequest, chatBody, usageFor, DEFAULT_REPLY,
    TEST_SECRET,
} from './lib/index.mjs';

const CLIENT_KEY = 'sk-client-key-that-must-not-travel';
const PROMPT = 'Summarise the validation loss trend of the last training run.';

let up;
let gw;       /* the page's config */
let small;    /* max_body_bytes: 1KiB, first_byte_timeout: 1s, idle_timeout: 1s */
let oa;

before(async () => {
    up = await startUpstream();
    gw = await startGateway({ upstream: up });
    small = await startGateway({ upstream: up, maxBodyBytes: '1KiB', firstByteTimeout: '1s',
        idleTimeout: '1s' });
    oa = client(gw, { apiKey: CLIENT_KEY });
});

after(async () => {
    const logs = [gw, small].filter(Boolean).map((g) => g.stderr()).join('\n');
    try {
        for (const g of [gw, small]) {
            if (g) {
                await g.stop();
            }
        }
    } finally {
        await up?.close();
    }
    /* Secrets and prompt text never reach the logs. */
    assert.ok(!logs.includes(TEST_SECRET), 'the upstream secret appeared in the gateway log');
    assert.ok(!logs.includes(CLIENT_KEY), 'the client key appeared in the gateway log');
    assert.ok(!logs.includes(PROMPT), 'prompt text appeared in the gateway log');
});

/** Every error body the gateway makes has OpenAI's shape. */
function assertOpenAIError(json, status, ctx) {
    assert.ok(json && typeof json === 'object', `${ctx}: body is not JSON`);
    assert.ok(json.error && typeof json.error === 'object', `${ctx}: no "error" object`);
    for (const k of ['message', 'type', 'code', 'param']) {
        assert.ok(k in json.error, `${ctx}: error.${k} missing in ${JSON.stringify(json)}`);
    }
    assert.equal(typeof json.error.message, 'string');
    assert.ok(json.error.message.length > 0);
    assert.equal(typeof json.error.type, 'string');
    return json.error;
}

async function collect(stream) {
    const chunks = [];
    for await (const c of stream) {
        chunks.push(c);
    }
    return chunks;
}

function streamedText(chunks) {
    return chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
}

test('non-streamed completion: content and usage reach the client', async () => {
    up.reset();
    const r = await oa.chat.completions.create({ model: 'gpt-4o',
        messages: [{ role: 'user', content: PROMPT }] });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, DEFAULT_REPLY);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const seen = up.chats();
    assert.equal(seen.length, 1);
    assert.equal(seen[0].body.model, 'gpt-4o');
    assert.deepEqual(r.usage, usageFor(seen[0].body.messages, DEFAULT_REPLY));
});

test('streamed completion with include_usage: every delta, then usage', async () => {
    up.reset();
    const text = 'alpha beta gamma delta epsilon zeta eta theta';
    up.behave({ text });
    const chunks = await collect(await oa.chat.completions.create({ model: 'gpt-4o',
        messages: [{ role: 'user', content: PROMPT }], stream: true,
        stream_options: { include_usage: true } }));
    assert.equal(chunks[0].object, 'chat.completion.chunk');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(streamedText(chunks), text);
    assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason === 'stop').length, 1);
    const usageChunks = chunks.filter((c) => c.usage);
    assert.equal(usageChunks.length, 1, 'exactly one chunk carries usage');
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, usageFor(up.chats()[0].body.messages, text));
});

test('streamed completion without include_usage: no usage chunk, but upstream was asked', async () => {
    up.reset();
    const text = 'one two three four five';
    up.behave({ text });
    const chunks = await collect(await oa.chat.completions.create({ model: 'gpt-4o',
        messages: [{ role: 'user', content: PROMPT }], stream: true }));
    assert.equal(streamedText(chunks), text);
    for (const c of chunks) {
        assert.equal(c.choices.length, 1, `unexpected chunk ${JSON.stringify(c)}`);
        assert.ok(!c.usage, `usage reached a client that did not ask: ${JSON.stringify(c)}`);
    }
    const seen = up.chats();
    assert.equal(seen.length, 1);
    assert.equal(seen[0].body.stream, true);
    assert.equal(seen[0].body.stream_options?.include_usage, true,
        'the gateway should ask the upstream for usage to account the stream');
});

test('a stream asks the upstream for usage: the client\'s bytes kept, or stream_options merged', async () => {
    /* No stream_options: the member goes in after the brace and the rest is the client's
     * bytes, spacing included. */
    const sent = ' { "model" : "gpt-4o",\n "messages": [{"role": "user", "content": "hi"}],' +
        ' "stream": true }';
    for (const [body, want] of [
        [sent, null],
        /* stream_options present (null, or an object without include_usage): merged. */
        ['{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,' +
            '"stream_options":null}', { include_usage: true }],
        ['{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,' +
            '"stream_options":{}}', { include_usage: true }],
    ]) {
        up.reset();
        const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions', body,
            headers: { authorization: 'Bearer x', accept: 'text/event-stream' } });
        assert.equal(r.status, 200, r.body);
        const seen = up.chats();
        assert.equal(seen.length, 1);
        assert.deepEqual(seen[0].body.stream_options, { include_usage: true });
        if (want === null) {
            assert.equal(seen[0].rawBody,
                ' {"stream_options":{"include_usage":true}, "model" : "gpt-4o",\n' +
                ' "messages": [{"role": "user", "content": "hi"}], "stream": true }');
        }
        else {
            const { stream_options: so, ...rest } = seen[0].body;
            assert.deepEqual(so, want);
            assert.deepEqual(rest, { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }],
                stream: true });
        }
    }
});

test('upstream gets the configured secret, never the client key', async () => {
    up.reset();
    await oa.chat.completions.create(chatBody(PROMPT));
    const seen = up.chats();
    assert.equal(seen.length, 1);
    assert.equal(seen[0].headers.authorization, `Bearer ${TEST_SECRET}`);
    for (const r of seen) {
        assert.ok(!JSON.stringify(r.headers).includes(CLIENT_KEY), 'client key was forwarded');
        assert.ok(!r.rawBody.includes(CLIENT_KEY));
    }
});

test('GET /v1/models lists the configured model', async () => {
    const page = await oa.models.list();
    const ids = page.data.map((m) => m.id);
    assert.ok(ids.includes('gpt-4o') || ids.includes('experiment-llm'),
        `models: ${JSON.stringify(ids)}`);
    const raw = await rawRequest(gw, { path: '/v1/models' });
    assert.equal(raw.status, 200);
    assert.match(raw.headers['content-type'], /^application\/json/);
    assert.equal(raw.json.object, 'list');
    for (const m of raw.json.data) {
        assert.equal(m.object, 'model');
        assert.equal(typeof m.id, 'string');
    }
});

test('GET /health reports status, version, pack, targets, chain, uptime', async () => {
    const r = await rawRequest(gw, { path: '/health' });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    const h = r.json;
    for (const k of ['status', 'version', 'pack', 'targets', 'chain', 'uptime']) {
        assert.ok(k in h, `/health lacks "${k}": ${r.body}`);
    }
    assert.equal(h.status, 'ok');
    assert.match(String(h.version), /^\d+\.\d+\.\d+/);
    assert.ok(JSON.stringify(h.pack).includes('wandb-governed-experiments'), r.body);
    assert.ok(JSON.stringify(h.targets).includes('experiment-llm'), r.body);
    assert.ok(Array.isArray(h.chain), r.body);
    for (const name of ['prompt-injection', 'pii-detector', 'audit-logger']) {
        assert.ok(JSON.stringify(h.chain).includes(name), `chain lacks ${name}: ${r.body}`);
    }
    assert.equal(typeof h.uptime === 'number' ? 'number' : typeof h.uptime, 'number');
    assert.ok(h.uptime >= 0);
    assert.ok(!r.body.includes(TEST_SECRET), '/health shows the secret');
});

test('bad JSON -> 400 with an OpenAI error body', async () => {
    up.reset();
    const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: '{"model": "gpt-4o", "messages": [', headers: { authorization: 'Bearer x' } });
    assert.equal(r.status, 400, r.body);
    assert.match(r.headers['content-type'], /^application\/json/);
    assertOpenAIError(r.json, 400, 'bad JSON');
    const bin = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80, 0x0a]) });
    assert.equal(bin.status, 400, bin.body);
    assertOpenAIError(bin.json, 400, 'binary body');
    assert.equal(up.chats().length, 0, 'a bad request reached the upstream');
});

test('missing messages -> 400 (raw and through the client)', async () => {
    up.reset();
    const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: { model: 'gpt-4o' } });
    assert.equal(r.status, 400, r.body);
    assertOpenAIError(r.json, 400, 'missing messages');
    await assert.rejects(oa.chat.completions.create({ model: 'gpt-4o' }), (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, String(e));
        assert.equal(e.status, 400);
        return true;
    });
    assert.equal(up.chats().length, 0);
});

test('unknown model -> 404 NotFoundError with OpenAI error body', async () => {
    up.reset();
    await assert.rejects(oa.chat.completions.create(chatBody(PROMPT, { model: 'gpt-nope-9' })),
        (e) => {
            assert.ok(e instanceof OpenAI.NotFoundError, String(e));
            assert.equal(e.status, 404);
            assert.equal(typeof e.error?.message, 'string');
            return true;
        });
    const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: chatBody(PROMPT, { model: 'gpt-nope-9' }) });
    assert.equal(r.status, 404);
    assertOpenAIError(r.json, 404, 'unknown model');
    assert.equal(up.chats().length, 0);
});

test('unknown path -> 404, wrong method -> 405', async () => {
    const p = await rawRequest(gw, { path: '/v1/not-a-route' });
    assert.equal(p.status, 404, p.body);
    assertOpenAIError(p.json, 404, 'unknown path');
    const post = await rawRequest(gw, { method: 'POST', path: '/v2/chat/completions',
        body: chatBody() });
    assert.equal(post.status, 404, post.body);
    const m = await rawRequest(gw, { path: '/v1/chat/completions' });
    assert.equal(m.status, 405, m.body);
    assertOpenAIError(m.json, 405, 'wrong method');
    const d = await rawRequest(gw, { method: 'DELETE', path: '/health' });
    assert.equal(d.status, 405, d.body);
});

test('body over gateway.max_body_bytes -> 413', async () => {
    up.reset();
    const big = chatBody('x'.repeat(4096));
    const r = await rawRequest(small, { method: 'POST', path: '/v1/chat/completions', body: big });
    assert.equal(r.status, 413, r.body);
    assertOpenAIError(r.json, 413, 'too large');
    /* Just under the limit still works. */
    const ok = await rawRequest(small, { method: 'POST', path: '/v1/chat/completions',
        body: chatBody('How many epochs did run 12 train for?') });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(up.chats().length, 1);
});

test('upstream down -> 502', async () => {
    const port = await closedPort();
    const down = await startGateway({ baseUrl: `http://127.0.0.1:${port}/v1`,
        connectTimeout: '2s' });
    try {
        const c = client(down);
        await assert.rejects(c.chat.completions.create(chatBody()), (e) => {
            assert.ok(e instanceof OpenAI.InternalServerError, String(e));
            assert.equal(e.status, 502);
            return true;
        });
        const r = await rawRequest(down, { method: 'POST', path: '/v1/chat/completions',
            body: chatBody(PROMPT, { stream: true }) });
        assert.equal(r.status, 502, r.body);
        assertOpenAIError(r.json, 502, 'upstream down');
    } finally {
        await down.stop();
    }
});

test('upstream silent past first_byte_timeout -> 504', async () => {
    up.reset();
    up.enqueue({ hang: true });
    const r = await rawRequest(small, { method: 'POST', path: '/v1/chat/completions',
        body: chatBody() });
    assert.equal(r.status, 504, r.body);
    assertOpenAIError(r.json, 504, 'timeout');
    up.enqueue({ hang: true });
    await assert.rejects(client(small).chat.completions.create(chatBody()), (e) => {
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, 504);
        return true;
    });
});

test('a stream that stalls or breaks mid-way ends in an error event, after the deltas', async () => {
    up.reset();
    const c = client(small);
    for (const b of [{ stallAfterChunks: 3 }, { closeAfterChunks: 3, chunkDelayMs: 50 }]) {
        up.enqueue({ text: 'one two three four five', ...b });
        let text = '';
        await assert.rejects((async () => {
            const s = await c.chat.completions.create(chatBody(PROMPT, { stream: true }));
            for await (const ch of s) {
                text += ch.choices[0]?.delta?.content || '';
            }
        })(), (e) => {
            assert.ok(e instanceof OpenAI.APIError, `${JSON.stringify(b)}: ${e}`);
            assert.equal(typeof e.error?.message, 'string', `${JSON.stringify(b)}: no error body`);
            return true;
        }, `${JSON.stringify(b)}: the client saw a complete stream`);
        /* What arrived before the failure was relayed, not held back. */
        assert.equal(text, 'one two', JSON.stringify(b));
    }
});

test('upstream 429 and 500 pass through with the same status and body', async () => {
    up.reset();
    const rate = { message: 'Rate limit reached for gpt-4o on tokens per min (TPM).',
        type: 'tokens', param: null, code: 'rate_limit_exceeded' };
    up.enqueue({ status: 429, error: rate, headers: { 'retry-after': '7' } });
    await assert.rejects(oa.chat.completions.create(chatBody()), (e) => {
        assert.ok(e instanceof OpenAI.RateLimitError, String(e));
        assert.equal(e.status, 429);
        assert.deepEqual(e.error, rate);
        return true;
    });
    const boom = { message: 'The server had an error while processing your request.',
        type: 'server_error', param: null, code: null };
    up.enqueue({ status: 500, error: boom });
    const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: chatBody() });
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { error: boom });
    up.enqueue({ status: 429, error: rate });
    const s = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: chatBody(PROMPT, { stream: true }) });
    assert.equal(s.status, 429, 'a streamed request that fails upstream keeps the status');
    assert.deepEqual(s.json, { error: rate });
});

test('X-Wandb-Run-Id is echoed as x-kt-run-id; a bad run id -> 400', async () => {
    up.reset();
    const tagged = client(gw, { headers: { 'X-Wandb-Run-Id': 'run-2024_abc7' } });
    const { response } = await tagged.chat.completions.create(chatBody()).withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-kt-run-id'), 'run-2024_abc7');
    const { response: sr, data } = await tagged.chat.completions
        .create(chatBody(PROMPT, { stream: true })).withResponse();
    await collect(data);
    assert.equal(sr.headers.get('x-kt-run-id'), 'run-2024_abc7');
    for (const bad of ['runs/abc', '../etc', 'a b', 'x'.repeat(300)]) {
        const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
            body: chatBody(), headers: { 'x-wandb-run-id': bad } });
        assert.equal(r.status, 400, `run id ${JSON.stringify(bad)}: ${r.body}`);
        assertOpenAIError(r.json, 400, 'bad run id');
    }
    assert.equal(up.chats().length, 2, 'requests with a bad run id reached the upstream');
});

test('every answer carries x-kt-request-id, x-kt-decision, x-kt-overhead-ms', async () => {
    const ids = new Set();
    for (const stream of [false, true]) {
        const { response, data } = await oa.chat.completions
            .create(chatBody(PROMPT, { stream })).withResponse();
        if (stream) {
            await collect(data);
        }
        const id = response.headers.get('x-kt-request-id');
        assert.ok(id && id.length >= 8, `x-kt-request-id: ${id}`);
        ids.add(id);
        assert.match(response.headers.get('x-kt-decision') || '', /^[a-z_-]+$/);
        const overhead = Number(response.headers.get('x-kt-overhead-ms'));
        assert.ok(Number.isFinite(overhead) && overhead >= 0,
            `x-kt-overhead-ms: ${response.headers.get('x-kt-overhead-ms')}`);
    }
    assert.equal(ids.size, 2, 'request ids are unique');
    const err = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: '{' });
    assert.ok(err.headers['x-kt-request-id'], 'an error answer has a request id too');
});

test('keep-alive: many sequential requests on one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set();
    try {
        for (let i = 0; i < 30; i++) {
            const r = await rawRequest(gw, i % 3 === 2 ? { path: '/health', agent }
                : { method: 'POST', path: '/v1/chat/completions', agent,
                    body: chatBody(`sequential request ${i}`, { stream: i % 3 === 1 }) });
            assert.equal(r.status, 200, r.body);
            ports.add(r.socketPort);
        }
    } finally {
        agent.destroy();
    }
    assert.equal(ports.size, 1, `used ${ports.size} connections for 30 requests`);
});

test('200 concurrent streamed requests all complete correctly', { timeout: 180000 }, async () => {
    up.reset();
    up.behave({ echo: true });
    const N = 200;
    const c = client(gw, { timeout: 120000 });
    const results = await Promise.all(Array.from({ length: N }, async (_, i) => {
        const want = `concurrent request number ${i} of ${N}`;
        const chunks = await collect(await c.chat.completions.create({ model: 'gpt-4o',
            messages: [{ role: 'user', content: want }], stream: true,
            stream_options: { include_usage: true } }));
        return { i, want, got: streamedText(chunks), usage: chunks.at(-1).usage };
    }));
    for (const r of results) {
        assert.equal(r.got, r.want, `stream ${r.i} got another answer`);
        assert.ok(r.usage && r.usage.completion_tokens === 6, `stream ${r.i} usage`);
    }
    assert.equal(up.chats().length, N);
    up.behave({});
});

/** A port on 127.0.0.1 with nothing listening. */
async function closedPort() {
    const s = net.createServer();
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    const { port } = s.address();
    await new Promise((resolve) => s.close(resolve));
    return port;
}
