// tests/e2e/upstream.test.mjs - the stand-in speaks OpenAI's wire format (no kt involved)
// SPDX-License-Identifier: Apache-2.0
//
// The official client talks to the stand-in directly. If these fail, the gateway tests would
// be judging the gateway against the wrong shapes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startUpstream, usageFor, DEFAULT_REPLY } from './lib/index.mjs';

let up;
let oa;

before(async () => {
    up = await startUpstream({ requireKey: 'sk-direct' });
    oa = new OpenAI({ baseURL: up.baseURL, apiKey: 'sk-direct', maxRetries: 0 });
});
after(async () => {
    await up.close();
});

const messages = [{ role: 'user', content: 'How did run 7 do?' }];

test('non-streamed completion parses with the official client', async () => {
    up.reset();
    const r = await oa.chat.completions.create({ model: 'gpt-4o', messages });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, DEFAULT_REPLY);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual(r.usage, usageFor(messages, DEFAULT_REPLY));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.equal(up.chats()[0].headers.authorization, 'Bearer sk-direct');
    assert.deepEqual(up.chats()[0].body.messages, messages);
});

test('streamed completion: role first, deltas, finish, usage only when asked', async () => {
    up.reset();
    up.behave({ text: 'one two three four' });
    const chunks = [];
    const s = await oa.chat.completions.create({ model: 'gpt-4o', messages, stream: true,
        stream_options: { include_usage: true } });
    for await (const c of s) {
        chunks.push(c);
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
    assert.equal(text, 'one two three four');
    const fin = chunks.filter((c) => c.choices[0] && c.choices[0].finish_reason);
    assert.equal(fin.length, 1);
    assert.equal(fin[0].choices[0].finish_reason, 'stop');
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, usageFor(messages, 'one two three four'));

    const plain = [];
    const s2 = await oa.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    for await (const c of s2) {
        plain.push(c);
    }
    assert.ok(plain.every((c) => c.choices.length === 1 && c.usage === undefined));
});

test('errors have OpenAI shape and reach the client as APIError', async () => {
    up.reset();
    up.enqueue({ status: 429, error: { message: 'Rate limit reached', type: 'requests',
        param: null, code: 'rate_limit_exceeded' } });
    await assert.rejects(oa.chat.completions.create({ model: 'gpt-4o', messages }), (e) => {
        assert.ok(e instanceof OpenAI.RateLimitError);
        assert.equal(e.status, 429);
        assert.equal(e.code, 'rate_limit_exceeded');
        return true;
    });
    const bad = new OpenAI({ baseURL: up.baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({ model: 'gpt-4o', messages }), (e) => {
        assert.ok(e instanceof OpenAI.AuthenticationError);
        assert.equal(e.code, 'invalid_api_key');
        return true;
    });
});

test('scripted close and hang are seen by the client', async () => {
    up.reset();
    up.enqueue({ close: true });
    await assert.rejects(oa.chat.completions.create({ model: 'gpt-4o', messages }),
        (e) => e instanceof OpenAI.APIConnectionError);
    up.enqueue({ hang: true });
    const short = new OpenAI({ baseURL: up.baseURL, apiKey: 'sk-direct', maxRetries: 0,
        timeout: 300 });
    await assert.rejects(short.chat.completions.create({ model: 'gpt-4o', messages }),
        (e) => e instanceof OpenAI.APIConnectionTimeoutError);
    assert.equal(up.chats().length, 2);
});

test('echo replies with the last user message', async () => {
    up.reset();
    up.behave({ echo: true });
    const r = await oa.chat.completions.create({ model: 'gpt-4o', messages: [
        { role: 'system', content: 'be brief' }, { role: 'user', content: 'repeat me' }] });
    assert.equal(r.choices[0].message.content, 'repeat me');
});
