// tests/e2e/pii.test.mjs - pii-detector end to end: redact, block and streamed answers
// SPDX-License-Identifier: Apache-2.0
//
// What the upstream stand-in receives is the proof: a redacted request arrives with
// <PERSON> / <EMAIL_ADDRESS> in place of the values, a blocked one never arrives, and with
// scan_responses an address split across SSE chunks still reaches the client redacted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startUpstream, startGateway, pageConfig, client } from './lib/index.mjs';

const PERSON = 'John Smith';
const EMAIL = 'john.smith@example.com';
const PROMPT = `Hi, my name is ${PERSON}. Please send the summary to ${EMAIL} tomorrow.`;

let up;
let redact; /* the page's config, unchanged */
let block;  /* action: block */
let answers; /* action: redact, scan_responses: true, all entities */

function withPii(settings) {
    const page = pageConfig({ upstream: up });
    const from = '  pii-detector:\n    action: redact\n    entities: [PERSON, EMAIL_ADDRESS]\n';
    assert.ok(page.includes(from), 'pageConfig() changed shape; update this test');
    return page.replace(from, `  pii-detector:\n${settings}`);
}

before(async () => {
    up = await startUpstream();
    redact = await startGateway({ upstream: up });
    block = await startGateway({ config: withPii('    action: block\n') });
    answers = await startGateway({
        config: withPii('    action: redact\n    scan_responses: true\n'),
    });
});

after(async () => {
    const gws = [redact, block, answers].filter(Boolean);
    const logs = gws.map((g) => g.stderr()).join('\n');
    try {
        for (const g of gws) {
            await g.stop();
        }
    } finally {
        await up?.close();
    }
    /* Matched values never reach the logs. */
    for (const v of [EMAIL, PERSON, 'ann.lee@corp.org', '415-555-0123']) {
        assert.ok(!logs.includes(v), `"${v}" appeared in a gateway log`);
    }
});

function lastUserText(rec) {
    const msgs = rec.body.messages;
    return msgs[msgs.length - 1].content;
}

test('page config: PERSON and EMAIL_ADDRESS arrive upstream as placeholders', async () => {
    up.reset();
    up.behave({ echo: true });
    const oa = client(redact);
    const res = await oa.chat.completions.create({ model: 'gpt-4o',
        messages: [{ role: 'user', content: PROMPT }] });
    const got = lastUserText(up.chats()[0]);
    assert.equal(got, 'Hi, my name is <PERSON>. Please send the summary to <EMAIL_ADDRESS> tomorrow.');
    assert.ok(!up.chats()[0].rawBody.includes(EMAIL));
    assert.ok(!up.chats()[0].rawBody.includes('Smith'));
    assert.equal(res.choices[0].message.content, got);
});

test('page config: text without PII is forwarded byte for byte', async () => {
    up.reset();
    up.behave({ echo: true });
    const oa = client(redact);
    const text = 'Will the May run beat the April one? Mark the best seed.';
    await oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: text }] });
    assert.equal(lastUserText(up.chats()[0]), text);
});

test('action block: 403 with code pii-detector, and the upstream never sees the request', async () => {
    up.reset();
    const oa = client(block);
    await assert.rejects(
        oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: PROMPT }] }),
        (e) => {
            assert.equal(e.status, 403);
            assert.equal(e.code, 'pii-detector');
            assert.ok(!JSON.stringify(e.error).includes(EMAIL));
            return true;
        });
    assert.equal(up.chats().length, 0);
    /* clean text still passes */
    await oa.chat.completions.create({ model: 'gpt-4o',
        messages: [{ role: 'user', content: 'Summarise the loss curve.' }] });
    assert.equal(up.chats().length, 1);
});

// What a client reads of a streamed answer to `question` through the answers gateway while
// the upstream behaves as `behaviour`: every chunk's delta[field] (content or refusal) joined.
async function streamedText(behaviour, question, field) {
    up.reset();
    up.behave(behaviour);
    const stream = await client(answers).chat.completions.create({ model: 'gpt-4o', stream: true,
        messages: [{ role: 'user', content: question }] });
    let text = '';
    for await (const ev of stream) {
        text += ev.choices[0]?.delta?.[field] || '';
    }
    return text;
}

test('scan_responses: a streamed answer with an address split across chunks is redacted', async () => {
    const text = await streamedText({
        chunks: ['Sure, write to ann', '.lee@co', 'rp.org or call 415', '-555-', '0123 today.'],
    }, 'Who can I contact?', 'content');
    assert.equal(text, 'Sure, write to <EMAIL_ADDRESS> or call <PHONE_NUMBER> today.');
});

test('scan_responses: streamed tool-call arguments split across chunks are redacted', async () => {
    up.reset();
    up.behave({
        toolCalls: [
            { name: 'send_mail', arguments: ['{"to": "ann', '.lee@co', 'rp.org", "subject": ',
                '"Run 7 results"}'] },
            { name: 'log_note', arguments: ['{"note": "done"}'] },
        ],
    });
    const oa = client(answers);
    const stream = await oa.chat.completions.create({ model: 'gpt-4o', stream: true,
        messages: [{ role: 'user', content: 'Mail the results.' }],
        tools: [
            { type: 'function', function: { name: 'send_mail', parameters: { type: 'object' } } },
            { type: 'function', function: { name: 'log_note', parameters: { type: 'object' } } },
        ] });
    const args = [];
    const names = [];
    let finish = null;
    let raw = '';
    for await (const ev of stream) {
        raw += JSON.stringify(ev);
        const ch = ev.choices[0];
        for (const tc of ch?.delta?.tool_calls || []) {
            args[tc.index] = (args[tc.index] || '') + (tc.function?.arguments || '');
            if (tc.function?.name) {
                names[tc.index] = tc.function.name;
            }
        }
        finish = ch?.finish_reason || finish;
    }
    assert.deepEqual(names, ['send_mail', 'log_note']);
    assert.deepEqual(JSON.parse(args[0]), { to: '<EMAIL_ADDRESS>', subject: 'Run 7 results' });
    assert.deepEqual(JSON.parse(args[1]), { note: 'done' });
    assert.equal(finish, 'tool_calls');
    assert.ok(!raw.includes('corp.org'), 'a piece of the address reached the client');
});

test('scan_responses: a streamed refusal is redacted like content', async () => {
    const refusal = await streamedText(
        { refusal: ['I cannot write to ann', '.lee@corp', '.org for you.'] }, 'Mail her.', 'refusal');
    assert.equal(refusal, 'I cannot write to <EMAIL_ADDRESS> for you.');
});

test('scan_responses: a non-streamed answer is redacted too', async () => {
    up.reset();
    up.behave({ text: 'Her address is ann.lee@corp.org.' });
    const oa = client(answers);
    const res = await oa.chat.completions.create({ model: 'gpt-4o',
        messages: [{ role: 'user', content: 'Who can I contact?' }] });
    assert.equal(res.choices[0].message.content, 'Her address is <EMAIL_ADDRESS>.');
});
