// tests/e2e/cost.test.mjs - what an answer costs and what is recorded of it, through real kt
// SPDX-License-Identifier: Apache-2.0
//
// One cost for a request whatever the chain order: the cost-tracker's ledger, the audit record
// (`kt events list`) and the agent's run (what W&B gets) carry the configured price. Budgets
// hold under concurrency (50 requests at once against a budget for 10) and count answers the
// client cut off by what they delivered. audit-logger's store_content keeps the answer the
// client got.
// Polls are bounded; nothing asserts on timing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import {
    upstreamSuite, startGateway, startAgent, agentStatus, client, pageConfig, runKt, makeTempDir,
    promptTokens, countTokens, sleep, auditList, waitAuditRecords,
} from './lib/index.mjs';

const suite = upstreamSuite({ behave: { echo: true } });
const { cleanups } = suite;

function freshStateDir(prefix) {
    return path.join(makeTempDir(prefix), 'state');
}

/** The page's config with `chain`, cost-tracker settings and extra audit-logger lines. */
function costConfig({ chain, cost = '', audit = '' }) {
    return pageConfig({ upstream: suite.up, chain })
        .replace('  audit-logger:\n', `  cost-tracker:\n${cost}  audit-logger:\n`)
        .replace('    log_all_access: true\n', `    log_all_access: true\n${audit}`);
}

/** A gateway on stateDir with costConfig's chain and cost-tracker settings, stopped at the end
 * of the suite if the test does not stop it first. */
async function startCostGateway(stateDir, chain, cost) {
    const g = await startGateway({ stateDir, config: costConfig({ chain, cost }) });
    cleanups.push(() => g.stop());
    return g;
}

/** A gateway on a fresh state dir whose cost-tracker charges completion tokens only, perMtok
 * dollars a million, and holds run runId to budget dollars; audit-logger records after it. */
async function startBudgetGateway(prefix, { perMtok, runId, budget }) {
    const stateDir = freshStateDir(prefix);
    const cost = `    prices:\n      gpt-4o: {input_per_mtok: 0, output_per_mtok: ${perMtok}}\n` +
        `    budgets:\n      runs: {${runId}: ${budget}}\n`;
    const g = await startCostGateway(stateDir, ['cost-tracker', 'audit-logger'], cost);
    return { stateDir, g };
}

/** The spend ledger as the gateway left it (read after stop: the last flush is at shutdown). */
function ledger(stateDir) {
    return JSON.parse(readFileSync(path.join(stateDir, 'cost', 'ledger.json'), 'utf8')).spend;
}

async function waitForAgentRun(stateDir, runId, requests) {
    let st = null;
    for (let i = 0; i < 300; i++) {
        try {
            st = await agentStatus(stateDir);
            const r = st.runs.find((x) => x.run_id === runId);
            if (r && r.requests >= requests) {
                return r;
            }
        } catch {
            /* the agent may not answer yet */
        }
        await sleep(100);
    }
    assert.fail(`the agent never counted ${requests} requests of ${runId}`);
    return null;
}

/* $1 a token, in and out: a request's cost is its token count. */
const DOLLAR_A_TOKEN =
    '    prices:\n      gpt-4o: {input_per_mtok: 1000000, output_per_mtok: 1000000}\n';

for (const chain of [['audit-logger', 'cost-tracker'], ['cost-tracker', 'audit-logger']]) {
    test(`one cost: ledger, audit record, kt events and the agent agree with chain [${chain}]`,
        async () => {
            const stateDir = freshStateDir('kt-e2e-onecost-');
            const agent = await startAgent({ stateDir });
            cleanups.push(() => agent.stop());
            const g = await startCostGateway(stateDir, chain, DOLLAR_A_TOKEN);
            const messages = [{ role: 'user', content: 'Which run had the best loss?' }];
            const oa = client(g, { headers: { 'X-Wandb-Run-Id': 'one-cost' } });
            const r = await oa.chat.completions.create({ model: 'gpt-4o', messages });
            const want = promptTokens(messages) + countTokens(messages[0].content);
            assert.equal(r.usage.total_tokens, want);

            const [rec] = await waitAuditRecords(stateDir, 1);
            assert.equal(rec.tokens_prompt + rec.tokens_completion, want);
            assert.equal(rec.cost_usd, want, 'the audit record carries the configured price');
            const run = await waitForAgentRun(stateDir, 'one-cost', 1);
            assert.equal(run.cost_usd, want, 'the event (and so W&B) carries the same cost');
            await g.stop();
            assert.equal(ledger(stateDir).run['one-cost'], want, 'the ledger charged the same');
            await agent.stop();
        });
}

test('budget: 50 concurrent requests against a budget for 10: 10 served, 40 refused, never over',
    async () => {
        /* $1 per completion token, prompts free; each answer is one word and max_tokens 1,
         * so a request holds exactly what it costs. The upstream answers late, so that
         * without holds every request would pass on the same zero spend. Holds make the
         * outcome the same whatever the timing. */
        const { stateDir, g } = await startBudgetGateway('kt-e2e-conc-',
            { perMtok: 1000000, runId: 'conc-run', budget: 10 });
        suite.up.behave({ text: 'ok', delayMs: 1000 });
        const before = suite.up.requests.length;
        try {
            const oa = client(g, { headers: { 'X-Wandb-Run-Id': 'conc-run' } });
            const calls = [];
            for (let i = 0; i < 50; i++) {
                calls.push(oa.chat.completions.create({ model: 'gpt-4o', max_tokens: 1,
                    messages: [{ role: 'user', content: `request ${i}` }] }));
            }
            const results = await Promise.allSettled(calls);
            const served = results.filter((x) => x.status === 'fulfilled');
            const refused = results.filter((x) => x.status === 'rejected');
            assert.equal(served.length, 10);
            assert.equal(refused.length, 40);
            for (const x of refused) {
                assert.equal(x.reason.status, 403, String(x.reason));
                assert.equal(x.reason.code, 'budget_exceeded');
            }
            assert.equal(suite.up.requests.length - before, 10, 'refused requests never left');
            await waitAuditRecords(stateDir, 50);
        } finally {
            suite.up.behave({ echo: true });
        }
        await g.stop();
        const spent = ledger(stateDir).run['conc-run'];
        assert.ok(spent <= 10, `the ledger went over the budget: ${spent}`);
        assert.equal(spent, 10);
    });

test('budget: aborted streams are charged what they delivered, so the budget stops them',
    async () => {
        /* Prompts free, $0.001 per completion token; the run may spend $1.4. */
        const { stateDir, g } = await startBudgetGateway('kt-e2e-abort-',
            { perMtok: 1000, runId: 'abort-run', budget: 1.4 });
        /* A long answer in deltas of 100 bytes. The client reads the first 20 (2000 bytes of
         * text) and leaves; the gateway notices at its next write to the closed connection,
         * so what the client had not read yet and a delta or two more were relayed too
         * (~0.5 USD a stream). The usage chunk never comes. */
        const delta = (i) => `${String(i).padStart(3, '0')} ${'x'.repeat(96)}`;
        const chunks = Array.from({ length: 300 }, (_, i) => delta(i));
        suite.up.behave({ chunks, chunkDelayMs: 50 });
        const outcomes = [];
        try {
            const oa = client(g, { headers: { 'X-Wandb-Run-Id': 'abort-run' } });
            for (let i = 0; i < 6; i++) {
                let stream = null;
                try {
                    stream = await oa.chat.completions.create({ model: 'gpt-4o', stream: true,
                        messages: [{ role: 'user', content: 'Write the long report.' }] });
                } catch (e) {
                    assert.equal(e.status, 403, String(e));
                    assert.equal(e.code, 'budget_exceeded');
                    outcomes.push('refused');
                }
                if (stream) {
                    let text = '';
                    let n = 0;
                    for await (const c of stream) {
                        const d = c.choices[0] && c.choices[0].delta.content;
                        if (d) {
                            text += d;
                            n++;
                        }
                        if (n === 20) {
                            break; /* aborts the response: the connection closes */
                        }
                    }
                    assert.equal(text, chunks.slice(0, 20).join(''));
                    outcomes.push('served');
                }
                /* The next request starts once this one is recorded (so charged). */
                await waitAuditRecords(stateDir, outcomes.length);
            }
        } finally {
            suite.up.behave({ echo: true });
        }
        const recs = (await waitAuditRecords(stateDir, 6)).reverse();
        let spent = 0;
        for (const [i, rec] of recs.entries()) {
            /* Admitted exactly while what the earlier streams were charged is under budget. */
            assert.equal(outcomes[i], spent < 1.4 ? 'served' : 'refused', `request ${i}`);
            if (outcomes[i] === 'refused') {
                assert.equal(rec.error_code, 'budget_exceeded');
                assert.equal(rec.cost_usd, 0);
                assert.equal(rec.tokens_estimated, undefined);
                continue;
            }
            assert.equal(rec.status, 499);
            assert.equal(rec.error_code, 'client_closed');
            assert.equal(rec.tokens_estimated, true);
            assert.ok(rec.tokens_completion >= 500,
                `${rec.tokens_completion} tokens for the 2000 bytes read and more relayed`);
            assert.ok(rec.tokens_prompt > 0, 'the prompt the upstream read is charged too');
            assert.equal(rec.cost_usd, rec.tokens_completion / 1000);
            spent += rec.cost_usd;
        }
        /* ~0.5 USD a stream: the budget stops the run after a few aborted streams. */
        assert.ok(outcomes.includes('refused'), `never refused: ${outcomes}`);
        await g.stop();
        assert.ok(Math.abs(ledger(stateDir).run['abort-run'] - spent) < 1e-9);
    });

test('audit: store_content keeps the answer as the client got it, redacted, streamed or not',
    async () => {
        const yaml = pageConfig({ upstream: suite.up, chain: ['pii-detector', 'audit-logger'] })
            .replace('    entities: [PERSON, EMAIL_ADDRESS]\n',
                '    entities: [PERSON, EMAIL_ADDRESS]\n    scan_responses: true\n')
            .replace('    log_all_access: true\n', '    log_all_access: true\n' +
                '    store_content: true\n');
        const g = await startGateway({ config: yaml });
        cleanups.push(() => g.stop());
        const EMAIL = 'jane.doe@example.com';
        const answer = `The best run was logged by ${EMAIL} yesterday.`;
        const messages = [{ role: 'user', content: 'Who logged the best run?' }];
        suite.up.behave({ text: answer });
        try {
            const oa = client(g, { headers: { 'X-Wandb-Run-Id': 'content-run' } });
            const r = await oa.chat.completions.create({ model: 'gpt-4o', messages });
            const got = r.choices[0].message.content;
            assert.ok(!got.includes(EMAIL), 'the answer reached the client unredacted');
            let [rec] = await waitAuditRecords(g.stateDir, 1);
            assert.equal(rec.streamed, false);
            assert.deepEqual(rec.content.map((m) => m.content), [messages[0].content]);
            assert.equal(rec.answer, got, 'the record keeps what the client received');
            assert.equal(rec.answer_truncated, undefined);

            const s = await oa.chat.completions.create({ model: 'gpt-4o', messages,
                stream: true });
            let text = '';
            for await (const c of s) {
                text += (c.choices[0] && c.choices[0].delta.content) || '';
            }
            assert.ok(!text.includes(EMAIL));
            [rec] = await waitAuditRecords(g.stateDir, 2);
            assert.equal(rec.streamed, true);
            assert.equal(rec.answer, text);

            /* Past 64 KiB the answer is cut and says so; the record is still written. */
            const long = 'lr=3e-4 '.repeat(10000);
            suite.up.behave({ text: long });
            const big = await oa.chat.completions.create({ model: 'gpt-4o', messages });
            assert.equal(big.choices[0].message.content, long);
            [rec] = await waitAuditRecords(g.stateDir, 3);
            assert.equal(rec.answer, long.slice(0, 65536));
            assert.equal(rec.answer_truncated, true);
            const v = await runKt(['events', 'verify', '--state-dir', g.stateDir]);
            assert.equal(v.code, 0, v.stdout);
            for (const x of await auditList(g.stateDir)) {
                assert.ok(!JSON.stringify(x).includes(EMAIL), 'raw PII in the audit log');
            }
        } finally {
            suite.up.behave({ echo: true });
        }
    });

test('budget: a non-streamed request the client cuts off is charged the prompt it sent',
    async () => {
        const stateDir = freshStateDir('kt-e2e-cut-');
        const chain = ['cost-tracker', 'audit-logger'];
        const g = await startCostGateway(stateDir, chain, DOLLAR_A_TOKEN);
        suite.up.behave({ hang: true });
        const seen = suite.up.requests.length;
        try {
            const content = 'Summarise every run of the sweep in one long table.';
            const body = JSON.stringify({ model: 'gpt-4o',
                messages: [{ role: 'user', content }] });
            const sock = net.connect(g.port, '127.0.0.1');
            await new Promise((resolve, reject) => {
                sock.once('connect', resolve);
                sock.once('error', reject);
            });
            sock.write('POST /v1/chat/completions HTTP/1.1\r\nHost: kt\r\n' +
                'Content-Type: application/json\r\nX-Wandb-Run-Id: cut-run\r\n' +
                `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
            await suite.up.waitForRequests(seen + 1);
            sock.resetAndDestroy(); /* the client gives up while the upstream works */
            const [rec] = await waitAuditRecords(stateDir, 1);
            assert.equal(rec.status, 499);
            assert.equal(rec.error_code, 'client_closed');
            assert.equal(rec.tokens_estimated, true);
            /* ~4 bytes a token, 4 per message, 3 for the reply; nothing was answered */
            assert.equal(rec.tokens_prompt, Math.ceil(Buffer.byteLength(content) / 4) + 4 + 3);
            assert.equal(rec.tokens_completion, 0);
            assert.equal(rec.cost_usd, rec.tokens_prompt);
            await g.stop();
            assert.equal(ledger(stateDir).run['cut-run'], rec.cost_usd);
        } finally {
            suite.up.behave({ echo: true });
        }
    });
