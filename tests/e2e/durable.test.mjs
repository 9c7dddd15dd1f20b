// tests/e2e/durable.test.mjs - a full disk under the agent and under the gateway loses nothing
// SPDX-License-Identifier: Apache-2.0
//
// Each case mounts a small tmpfs (root only: CI runs as root; elsewhere the cases are skipped
// with the reason), fills it to the last byte and sends requests through the real gateway to
// the real agent. While the disk is full the agent holds its acknowledgements and the gateway
// holds its events; once space returns every request is counted exactly once. Waits are on log
// lines and bounded polls of `kt agent status`; nothing asserts on timing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
    closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync,
    writeSync,
} from 'node:fs';
import path from 'node:path';

import {
    startGateway, startAgent, agentStatus, statusTotal, waitAgentTotal, client, makeTempDir,
    rawRequest, runKt,
    sleep, upstreamSuite,
} from './lib/index.mjs';
import { startStandin } from './wandb-standin/server.mjs';

const suite = upstreamSuite();
const { cleanups } = suite;

const WB_KEY = `kt-${'d'.repeat(40)}`;
const ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const SKIP = ROOT ? false : 'needs root to mount a small tmpfs (CI runs as root)';

/** A fresh tmpfs of `size` (e.g. '4m') on a temp dir; unmounted after the file's tests. */
function mountTmpfs(size) {
    const dir = path.join(makeTempDir('kt-e2e-full-'), 'fs');
    mkdirSync(dir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
    cleanups.push(() => execFileSync('umount', ['-l', dir]));
    return dir;
}

/** Writes zeros into dir/filler until the file system refuses; returns a function freeing it. */
function fillUp(dir) {
    const file = path.join(dir, 'filler');
    const fd = openSync(file, 'w');
    for (const size of [1 << 20, 1 << 16, 4096, 512, 1]) {
        const chunk = Buffer.alloc(size);
        for (;;) {
            try {
                writeSync(fd, chunk);
            } catch (e) {
                if (e.code === 'ENOSPC') {
                    break;
                }
                throw e;
            }
        }
    }
    closeSync(fd);
    return () => rmSync(file, { force: true });
}

async function ask(gw, runId, i) {
    const oa = client(gw, { headers: { 'X-Wandb-Run-Id': runId } });
    await oa.chat.completions.create({ model: 'gpt-4o',
        messages: [{ role: 'user', content: `Summarise training run number ${i}.` }] });
}

test('agent: a full journal disk holds acknowledgements, and ingest resumes when space returns',
    { skip: SKIP }, async () => {
        const fs = mountTmpfs('2m');
        const stateDir = path.join(fs, 'state');
        const agent = await startAgent({ stateDir, args: ['--exporters', 'none'] });
        cleanups.push(() => agent.stop());
        /* The gateway's spool is on an ordinary disk: it keeps what the agent cannot take. */
        const gw = await startGateway({ upstream: suite.up,
            args: ['--agent-socket', path.join(stateDir, 'agent.sock')] });
        cleanups.push(() => gw.stop());
        let sent = 0;
        await ask(gw, 'run-full', sent++);
        await waitAgentTotal(stateDir, 1, 60000);
        const free = fillUp(fs);
        const stallRe = /journal write failed; holding acknowledgements/;
        /* The journal's last page may take a few more events before the disk says no. */
        for (let i = 0; i < 400 && !stallRe.test(agent.stderr()) && !agent.proc.exited(); i++) {
            await ask(gw, 'run-full', sent++);
            await sleep(10);
        }
        for (let i = 0; i < 5; i++) {
            await ask(gw, 'run-full', sent++);
        }
        assert.equal(agent.proc.exited(), null,
            `the agent kept running on a full disk; stderr:\n${agent.stderr().slice(-2000)}`);
        await agent.waitForLog(stallRe, 10000);
        const held = await agentStatus(stateDir);
        assert.equal(held.agent.journal_stalled, true);
        assert.ok(statusTotal(held) < sent, 'nothing past the full journal was counted');
        const health = await rawRequest(gw, { path: '/health' });
        assert.equal(health.json.events.dropped, 0);
        free();
        await agent.waitForLog(/journal writable again/, 30000);
        const st = await waitAgentTotal(stateDir, sent, 60000);
        assert.equal(statusTotal(st), sent, 'every request counted exactly once');
        assert.equal(st.agent.journal_stalled, false);
        await gw.stop();
        await agent.stop();
    });

/** Bounded poll of the gateway's /health until pred(events) holds; returns the events. */
async function waitHealth(gw, pred, what, limitMs = 30000) {
    let ev = null;
    for (let waited = 0; waited < limitMs; waited += 50) {
        ev = (await rawRequest(gw, { path: '/health' })).json.events;
        if (pred(ev)) {
            return ev;
        }
        await sleep(50);
    }
    assert.fail(`gateway events never ${what}: ${JSON.stringify(ev)}`);
    return ev;
}

test('gateway: a full spool disk holds events in memory, none dropped, all counted later',
    { skip: SKIP }, async () => {
        const fs = mountTmpfs('2m');
        const agentState = path.join(makeTempDir('kt-e2e-full-agent-'), 'state');
        /* No audit-logger: its own full-disk behaviour is not what this case is about. */
        const gw = await startGateway({ upstream: suite.up, stateDir: path.join(fs, 'state'),
            chain: ['prompt-injection', 'pii-detector'],
            args: ['--agent-socket', path.join(agentState, 'agent.sock')] });
        cleanups.push(() => gw.stop());
        let sent = 0;
        /* The agent is away, so these wait in the spool... */
        for (let i = 0; i < 3; i++) {
            await ask(gw, 'run-spool', sent++);
        }
        await waitHealth(gw, (e) => e.pending === sent, `pending=${sent}`);
        const free = fillUp(fs);
        /* ...and these find the spool's disk full: every one is answered 200 and kept. */
        for (let i = 0; i < 20; i++) {
            await ask(gw, 'run-spool', sent++);
        }
        const ev = await waitHealth(gw, (e) => e.pending === sent || e.dropped > 0,
            `pending=${sent}`);
        assert.equal(ev.dropped, 0, 'no event dropped on a full disk');
        assert.ok(ev.held > 0, `events held in memory: ${JSON.stringify(ev)}`);
        await gw.waitForLog(/spool write failed; holding events in memory/, 5000);
        free();
        await waitHealth(gw, (e) => e.held === 0, 'held=0');
        const agent = await startAgent({ stateDir: agentState, args: ['--exporters', 'none'] });
        cleanups.push(() => agent.stop());
        const st = await waitAgentTotal(agentState, sent, 60000);
        assert.equal(statusTotal(st), sent, 'the agent counted every request exactly once');
        await waitHealth(gw, (e) => e.pending === 0 && e.dropped === 0, 'all acknowledged');
        await gw.stop();
        await agent.stop();
    });

/** The audit log's record with this seq, parsed: its own hash is its "hash" field. */
function auditRecord(stateDir, seq) {
    const dir = path.join(stateDir, 'audit');
    for (const f of readdirSync(dir).filter((x) => x.startsWith('seg-')).sort()) {
        for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
            if (line.startsWith(`{"seq":${seq},`)) {
                return JSON.parse(line);
            }
        }
    }
    return null;
}

test('the audit chain head leaves the machine: W&B summary, agent status and agent log',
    async () => {
        const standin = await startStandin({ keys: [WB_KEY] });
        cleanups.push(() => standin.close());
        const stateDir = path.join(makeTempDir('kt-e2e-head-'), 'state');
        const cfg = path.join(makeTempDir('kt-e2e-head-cfg-'), 'agent.yaml');
        writeFileSync(cfg, 'exporters:\n  wandb:\n    upload_interval: 0s\n');
        const agent = await startAgent({ stateDir, args: ['--exporters', 'wandb', '--config', cfg],
            env: { HOME: makeTempDir('kt-e2e-head-home-'), NETRC: undefined,
                WANDB_BASE_URL: standin.url, WANDB_API_KEY: WB_KEY, WANDB_ENTITY: undefined,
                WANDB_PROJECT: 'gov' } });
        cleanups.push(() => agent.stop());
        const gw = await startGateway({ upstream: suite.up, stateDir });
        cleanups.push(() => gw.stop());
        for (let i = 0; i < 5; i++) {
            await ask(gw, 'run-head', i);
        }
        /* Once the writer has committed all five, the next request carries seq 5 as the head. */
        const headFile = path.join(stateDir, 'audit', 'head.json');
        for (let i = 0; i < 300; i++) {
            if (existsSync(headFile) && JSON.parse(readFileSync(headFile, 'utf8')).seq >= 5) {
                break;
            }
            await sleep(50);
        }
        await ask(gw, 'run-head', 5);
        const rec = auditRecord(stateDir, 5);
        assert.ok(rec, 'record 5 is in the local audit log');
        let sum = null;
        for (let i = 0; i < 600; i++) {
            const run = Object.values(standin.state.runs).find((r) => r.name === 'run-head-gov');
            sum = run && run.summary ? JSON.parse(run.summary) : null;
            if (sum && sum['governance/requests'] === 6) {
                break;
            }
            await sleep(50);
        }
        assert.ok(sum, 'the governance run reached W&B');
        assert.equal(sum['governance/requests'], 6);
        assert.equal(sum['governance/audit_head_seq'], 5, JSON.stringify(sum));
        assert.equal(sum['governance/audit_head_hash'], rec.hash,
            'the published hash is record 5\'s hash in the local log');
        const st = await agentStatus(stateDir);
        assert.deepEqual(st.agent.audit_head, { seq: 5, hash: rec.hash });
        await agent.waitForLog(new RegExp(`audit chain head"? seq=5 hash=${rec.hash}`), 10000);
        await gw.stop();
        await agent.stop();
    });

test('kt events reemit makes the agent whole from the audit log, and counts nothing twice',
    async () => {
        const stateDir = path.join(makeTempDir('kt-e2e-reemit-'), 'state');
        /* A spool of 4 KiB and no agent: most events are dropped, the audit log keeps all. */
        const gw = await startGateway({ upstream: suite.up, stateDir,
            env: { KT_SPOOL_MAX_BYTES: '4096' } });
        cleanups.push(() => gw.stop());
        const n = 30;
        for (let i = 0; i < n; i++) {
            await ask(gw, i % 2 ? 'run-lost-a' : 'run-lost-b', i);
        }
        const health = await waitHealth(gw, (e) => e.dropped > 0, 'dropped>0');
        const headFile = path.join(stateDir, 'audit', 'head.json');
        for (let i = 0; i < 300; i++) {
            if (existsSync(headFile) && JSON.parse(readFileSync(headFile, 'utf8')).seq >= n) {
                break;
            }
            await sleep(50);
        }
        let agent = await startAgent({ stateDir, args: ['--exporters', 'none'] });
        cleanups.push(() => agent.stop());
        await waitHealth(gw, (e) => e.pending === 0, 'pending=0');
        let st = await agentStatus(stateDir);
        const lost = n - statusTotal(st);
        assert.ok(lost >= health.dropped && lost > 0, `events lost: ${lost}`);

        /* One lost request by id, then everything: only the lost ones count. */
        const reemit = (...args) => runKt(['events', 'reemit', '--state-dir', stateDir, ...args]);
        const counted = (r) => Number(/counted (\d+) new/.exec(r.stdout)?.[1]);
        const audit = readdirSync(path.join(stateDir, 'audit')).filter((f) => f.startsWith('seg-'))
            .flatMap((f) => readFileSync(path.join(stateDir, 'audit', f), 'utf8').split('\n'))
            .filter((l) => l.startsWith('{"seq":')).map((l) => JSON.parse(l));
        assert.equal(audit.length, n);
        let r = await reemit('--request-id', audit[n - 1].request_id);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(counted(r), 0, `the newest request was never lost: ${r.stdout}`);
        r = await reemit('--all');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(counted(r), lost, r.stdout);
        st = await agentStatus(stateDir);
        assert.equal(statusTotal(st), n, 'the agent now equals the audit log');
        for (const id of ['run-lost-a', 'run-lost-b']) {
            const want = audit.filter((x) => x.run_id === id);
            const got = st.runs.find((x) => x.run_id === id);
            assert.equal(got.requests, want.length, id);
            assert.equal(got.tokens.total, want.reduce((s, x) => s + x.tokens_prompt +
                x.tokens_completion, 0), `${id} tokens`);
        }
        /* Again, and again after a restart: nothing more counts. */
        r = await reemit('--all');
        assert.equal(counted(r), 0, r.stdout);
        await agent.stop();
        agent = await startAgent({ stateDir, args: ['--exporters', 'none'] });
        cleanups.push(() => agent.stop());
        r = await reemit('--run', 'run-lost-a');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(counted(r), 0, r.stdout);
        assert.equal(statusTotal(await agentStatus(stateDir)), n);
        await gw.stop();
        await agent.stop();
    });
