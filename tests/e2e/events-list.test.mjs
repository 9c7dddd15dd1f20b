// tests/e2e/events-list.test.mjs - kt events list shows whole values or marks the cut
// SPDX-License-Identifier: Apache-2.0
//
// Records come from real requests through the gateway (audit-logger in the chain); the
// table's columns are sized to the data, a value longer than its column's cap ends in '…',
// --wide lifts the caps and --json is always complete.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
    startUpstream, startGateway, client, pageConfig, runKt, sleep, waitAuditRecords,
} from './lib/index.mjs';

const RUN21 = 'run-2026-12-02-abcdef'; // 21 characters
const RUN100 = `long-${'x'.repeat(90)}-tail`; // 100 characters
const PII = 'Write to jane.doe@example.com or john.roe@example.org, call +1 415 555 0100, '
    + 'card 4111 1111 1111 1111, and greet Jane Doe.';

let up;
let gw;

before(async () => {
    up = await startUpstream({ behave: { echo: true } });
    const config = pageConfig({ upstream: up }).replace('entities: [PERSON, EMAIL_ADDRESS]',
        'entities: [PERSON, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD]');
    gw = await startGateway({ config });
    let n = 0;
    for (const run of [RUN21, RUN100]) {
        const oa = client(gw, { headers: { 'X-Wandb-Run-Id': run } });
        await oa.chat.completions.create({ model: 'gpt-4o',
            messages: [{ role: 'user', content: PII }] });
        /* Each client has a connection of its own, which may be served by another worker,
         * and a worker records a request after its answer has left: the next request waits
         * for this one's record, so the log's order is the requests'. */
        await waitAuditRecords(gw.stateDir, ++n);
    }
});

after(async () => {
    try {
        await gw?.stop();
    } finally {
        await up?.close();
    }
});

async function list(extra = []) {
    const r = await runKt(['events', 'list', '--limit', '10', '--state-dir', gw.stateDir,
        ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
}

/** The JSON records, waiting (bounded) for the writer's group commit. */
async function records(n) {
    for (let i = 0; i < 100; i++) {
        const recs = (await list(['--json'])).split('\n').filter(Boolean).map((l) => JSON.parse(l));
        if (recs.length >= n) {
            return recs;
        }
        await sleep(50);
    }
    assert.fail(`fewer than ${n} audit records appeared`);
    return [];
}

/** The table as rows of cells: columns start where the header's names start. */
function cells(table) {
    const lines = table.replace(/\n$/, '').split('\n');
    const header = lines[0];
    const starts = [...header.matchAll(/\S+/g)].map((m) => m.index);
    const names = [...header.matchAll(/\S+/g)].map((m) => m[0]);
    return lines.slice(1).map((l) => {
        const chars = [...l]; // '…' is one column
        return Object.fromEntries(names.map((n, i) => [n,
            chars.slice(starts[i], i + 1 < starts.length ? starts[i + 1] : undefined).join('').trim()]));
    });
}

test('--json keeps every value whole', async () => {
    const recs = await records(2);
    assert.deepEqual(recs.slice(0, 2).map((r) => r.run_id), [RUN100, RUN21]);
    assert.ok(recs[0].pii.PHONE_NUMBER >= 1 && recs[0].pii.CREDIT_CARD >= 1);
});

test('a 21-character run id and the policy summary are shown whole', async () => {
    await records(2);
    const rows = cells(await list(['--run', RUN21]));
    assert.equal(rows.length, 1);
    assert.equal(rows[0].RUN, RUN21);
    const pol = rows[0].POLICIES;
    assert.ok(!pol.includes('…'), pol);
    for (const t of ['EMAIL_ADDRESS=2', 'PERSON=1', 'PHONE_NUMBER=1', 'CREDIT_CARD=1']) {
        assert.ok(pol.includes(t), `${t} in ${pol}`);
    }
});

test('a value longer than its column ends in an ellipsis; --wide shows it whole', async () => {
    await records(2);
    const rows = cells(await list());
    const long = rows.find((r) => r.RUN.startsWith('long-'));
    assert.ok(long.RUN.endsWith('…'), long.RUN);
    assert.ok(RUN100.startsWith(long.RUN.slice(0, -1)), 'the cut keeps the start');
    assert.notEqual(long.RUN.slice(0, -1), RUN100);
    // Neither row's run id passes for another value: whole, or marked.
    for (const r of rows) {
        assert.ok(r.RUN === RUN21 || r.RUN.endsWith('…'), r.RUN);
    }
    const wide = cells(await list(['--wide']));
    assert.deepEqual(wide.map((r) => r.RUN), [RUN100, RUN21]);
    assert.ok(wide.every((r) => !Object.values(r).some((v) => v.includes('…'))));
});
