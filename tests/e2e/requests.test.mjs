// tests/e2e/requests.test.mjs - what a hostile or careless client sends, and what kt passes back
// SPDX-License-Identifier: Apache-2.0
//
// Requests OpenAI itself refuses are refused by kt too, before anything reaches the upstream:
// stream_options of the wrong type, messages that are not objects, content that is neither a
// string nor an array, and bodies that are not strict UTF-8 (overlongs, encoded surrogates,
// lone \uD800 escapes). The upstream's rate-limit and retry headers reach the official openai
// client, which schedules its retries by them. GET /v1/models needs a key when rbac is on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import {
    upstreamSuite, startGateway, pageConfig, client, rawRequest, chatBody, runKt,
} from './lib/index.mjs';

const suite = upstreamSuite();

async function gateway(opts = {}) {
    const gw = await startGateway({ upstream: suite.up, ...opts });
    suite.cleanups.push(() => gw.stop());
    return gw;
}

const post = (gw, body, headers = {}) => rawRequest(gw, { method: 'POST',
    path: '/v1/chat/completions', headers, body });

function assertRefused(r, param, what) {
    assert.equal(r.status, 400, `${what}: ${r.body}`);
    assert.equal(r.json.error.type, 'invalid_request_error', what);
    assert.equal(r.json.error.code, 'invalid_type', what);
    assert.equal(r.json.error.param, param, what);
}

test('stream_options of the wrong type is a 400 naming it, not replaced', async () => {
    const gw = await gateway();
    suite.up.reset();
    const bad = [['"garbage"', 'stream_options'], ['5', 'stream_options'],
        ['[1,2]', 'stream_options'], ['{"include_usage":"yes"}', 'stream_options.include_usage']];
    for (const [so, param] of bad) {
        const r = await post(gw, '{"model":"gpt-4o","stream":true,"stream_options":' + so +
            ',"messages":[{"role":"user","content":"hi"}]}');
        assertRefused(r, param, so);
    }
    /* The official client gets its usual error class. */
    await assert.rejects(client(gw).chat.completions.create(chatBody('hi',
        { stream: true, stream_options: 'garbage' })), (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, String(e));
        assert.equal(e.param, 'stream_options');
        return true;
    });
    assert.equal(suite.up.chats().length, 0, 'nothing was forwarded');
    /* A well-typed value still works. */
    const s = await client(gw).chat.completions.create(chatBody('hi',
        { stream: true, stream_options: { include_usage: true } }));
    let usage = null;
    for await (const ch of s) {
        usage = ch.usage || usage;
    }
    assert.ok(usage && usage.total_tokens > 0);
});

test('messages that are not objects and content of the wrong type are a 400', async () => {
    const gw = await gateway();
    suite.up.reset();
    const cases = [
        ['[1,"x",null]', 'messages[0]'],
        ['[{"role":"user","content":"ok"},null]', 'messages[1]'],
        ['[{"role":"user","content":5}]', 'messages[0].content'],
        ['[{"role":"user","content":{"text":"hi"}}]', 'messages[0].content'],
        ['[{"role":"user","content":true}]', 'messages[0].content'],
        ['[{"role":"user","content":[{"type":"text","text":["jane@example.com"]}]}]',
            'messages[0].content[0].text'],
    ];
    for (const [m, param] of cases) {
        assertRefused(await post(gw, `{"model":"gpt-4o","messages":${m}}`), param, m);
    }
    assert.equal(suite.up.chats().length, 0, 'nothing was forwarded');
    const parts = await post(gw, chatBody([{ type: 'text', text: 'hi' }]));
    assert.equal(parts.status, 200, parts.body);
});

test('invalid UTF-8 and lone surrogate escapes are a 400 invalid_json, never forwarded',
    async () => {
        const gw = await gateway();
        suite.up.reset();
        const raw = (bytes) => Buffer.concat([
            Buffer.from('{"model":"gpt-4o","messages":[{"role":"user","content":"Mail jane'),
            Buffer.from(bytes),
            Buffer.from('doe@example.com please"}]}')]);
        const bad = [[0xc0, 0xaf], [0xc0, 0x80], [0xc0, 0xae], [0xe0, 0x80, 0xae],
            [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xff]];
        for (const b of bad) {
            const r = await post(gw, raw(b));
            assert.equal(r.status, 400, `${b}: ${r.body}`);
            assert.equal(r.json.error.code, 'invalid_json', String(b));
        }
        for (const esc of ['\\ud800', '\\uDC00', '\\ud800\\u0041']) {
            const r = await post(gw, `{"model":"gpt-4o","messages":[{"role":"user",` +
                `"content":"a${esc}b"}]}`);
            assert.equal(r.status, 400, `${esc}: ${r.body}`);
            assert.equal(r.json.error.code, 'invalid_json', esc);
        }
        assert.equal(suite.up.chats().length, 0, 'nothing was forwarded');
        /* Well-formed text of every length still passes, paired escapes too. */
        const ok = await post(gw, chatBody('caf\u00e9 \u20ac \u{1F600} \ud83d\ude00'));
        assert.equal(ok.status, 200, ok.body);
        const esc = await post(gw, '{"model":"gpt-4o","messages":[{"role":"user",' +
            '"content":"\\ud83d\\ude00"}]}');
        assert.equal(esc.status, 200, esc.body);
    });

test('the openai client sees the upstream rate-limit headers and retries as they say',
    async () => {
        const gw = await gateway();
        suite.up.reset();
        const rate = { message: 'Rate limit reached for gpt-4o.', type: 'requests', param: null,
            code: 'rate_limit_exceeded' };
        const limits = { 'x-ratelimit-limit-requests': '500', 'x-ratelimit-remaining-requests': '0',
            'x-ratelimit-reset-requests': '120ms', 'x-ratelimit-remaining-tokens': '29000' };
        /* retry-after-ms tells the client exactly how long to wait; x-should-retry that it may.
         * The client sleeps through setTimeout: the delays it asks for show what it read,
         * without measuring time (its own backoff is 0.5-1 s with jitter, never 1234 ms). */
        suite.up.enqueue({ status: 429, error: rate,
            headers: { ...limits, 'retry-after-ms': '1234', 'x-should-retry': 'true' } });
        suite.up.enqueue({ headers: { ...limits, 'x-ratelimit-remaining-requests': '499' } });
        const oa = client(gw, { maxRetries: 1 });
        const delays = [];
        const realSetTimeout = globalThis.setTimeout;
        globalThis.setTimeout = (fn, ms, ...args) => {
            delays.push(ms);
            return realSetTimeout(fn, ms, ...args);
        };
        let got;
        try {
            got = await oa.chat.completions.create(chatBody()).withResponse();
        } finally {
            globalThis.setTimeout = realSetTimeout;
        }
        assert.ok(got.data.choices[0].message.content.length > 0);
        assert.equal(suite.up.chats().length, 2, 'the client retried once');
        assert.ok(delays.includes(1234), `the client waited retry-after-ms (${delays})`);
        assert.equal(got.response.headers.get('x-ratelimit-remaining-requests'), '499');
        assert.equal(got.response.headers.get('x-ratelimit-limit-requests'), '500');

        /* retry-after (seconds) is the fallback the client reads without the ms form. */
        suite.up.reset();
        suite.up.enqueue({ status: 429, error: rate, headers: { 'retry-after': '1.25' } });
        delays.length = 0;
        globalThis.setTimeout = (fn, ms, ...args) => {
            delays.push(ms);
            return realSetTimeout(fn, ms, ...args);
        };
        try {
            await oa.chat.completions.create(chatBody());
        } finally {
            globalThis.setTimeout = realSetTimeout;
        }
        assert.ok(delays.includes(1250), `the client waited retry-after (${delays})`);

        /* x-should-retry: false stops the client's retries on a status it would retry. */
        suite.up.reset();
        suite.up.enqueue({ status: 429, error: rate, headers: { 'x-should-retry': 'false' } });
        await assert.rejects(client(gw, { maxRetries: 2 }).chat.completions.create(chatBody()),
            (e) => {
                assert.ok(e instanceof OpenAI.RateLimitError, String(e));
                assert.equal(e.headers.get('x-should-retry'), 'false');
                return true;
            });
        assert.equal(suite.up.chats().length, 1, 'x-should-retry: false was obeyed');

        /* Streams: the same headers on the stream's head, and on a refused stream. */
        suite.up.reset();
        suite.up.enqueue({ headers: limits });
        const s = await oa.chat.completions.create(chatBody('hi', { stream: true }))
            .withResponse();
        for await (const ch of s.data) {
            assert.ok(ch);
        }
        assert.equal(s.response.headers.get('x-ratelimit-reset-requests'), '120ms');
        suite.up.enqueue({ status: 429, error: rate, headers: { ...limits,
            'retry-after-ms': '10', 'x-should-retry': 'false' } });
        await assert.rejects(oa.chat.completions.create(chatBody('hi', { stream: true })), (e) => {
            assert.ok(e instanceof OpenAI.RateLimitError, String(e));
            assert.equal(e.headers.get('x-ratelimit-remaining-requests'), '0');
            assert.equal(e.headers.get('retry-after-ms'), '10');
            return true;
        });
    });

test('GET /v1/models needs a key when rbac is on, like the chat route', async () => {
    const hash = (await runKt(['rbac', 'hash-key', 'sk-alice-0001'])).stdout.trim();
    assert.match(hash, /^[0-9a-f]{64}$/);
    const yaml = pageConfig({ upstream: suite.up, chain: ['rbac', 'audit-logger'] }).replace(
        '  audit-logger:\n', ['  rbac:', '    keys:',
            `      - {name: alice, key_sha256: ${hash}, role: researcher}`,
            '    roles:', '      researcher: {models: ["gpt-4o*"]}', '  audit-logger:', ''].join('\n'));
    const gw = await gateway({ config: yaml });
    for (const path of ['/v1/models', '/v1/models/gpt-4o']) {
        let r = await rawRequest(gw, { path });
        assert.equal(r.status, 401, `${path} without a key: ${r.body}`);
        assert.equal(r.json.error.code, 'invalid_api_key');
        assert.equal(r.json.error.type, 'authentication_error');
        r = await rawRequest(gw, { path, headers: { authorization: 'Bearer sk-wrong' } });
        assert.equal(r.status, 401, `${path} with an unknown key`);
        r = await rawRequest(gw, { path, headers: { authorization: 'Bearer sk-alice-0001' } });
        assert.equal(r.status, 200, `${path} with alice's key: ${r.body}`);
    }
    await assert.rejects(client(gw, { apiKey: 'sk-wrong' }).models.list(),
        (e) => e instanceof OpenAI.AuthenticationError);
    const list = await client(gw, { apiKey: 'sk-alice-0001' }).models.list();
    assert.ok(list.data.some((m) => m.id === 'gpt-4o'));
    /* Without rbac the list stays open, as before. */
    const open = await gateway();
    assert.equal((await rawRequest(open, { path: '/v1/models' })).status, 200);
});
