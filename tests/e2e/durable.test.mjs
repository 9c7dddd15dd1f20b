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
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

import {
    startGateway, startAgent, agentStatus, client, makeTempDir, rawRequest, pageConfig,
    sleep, upstreamSuite,
} from './lib/index.mjs';

const suite = upstreamSuite();
const { cleanups } = suite;

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

function total(status) {
    return status.runs.reduce((n, r) => n + r.requests, 0);
}

/** Bounded poll: the agent's status once it has counted `want` requests in all. */
async function waitTotal(stateDir, want, limitMs = 60000) {
    let st = null;
    for (let waited = 0; waited < limitMs; waited += 100) {
        try {
            st = await agentStatus(stateDir);
            if (total(st) >= want) {
                return st;
            }
        } catch {
            /* busy */
        }
        await sleep(100);
    }
    assert.fail(`agent counted ${st ? total(st) : 'nothing'} requests, wanted ${want}`);
    return st;
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
        await waitTotal(stateDir, 1);
        const free = fillUp(fs);
        const stallRe = /journal write failed; holding acknowledgements/;
        /* The journal's last page may take a few more events before the disk says no. */
        for (let i = 0; i < 400 && !stallRe.test(agent.stderr()); i++) {
            await ask(gw, 'run-full', sent++);
            await sleep(10);
        }
        await agent.waitForLog(stallRe, 10000);
        for (let i = 0; i < 5; i++) {
            await ask(gw, 'run-full', sent++);
        }
        assert.equal(agent.proc.exited(), null, 'the agent kept running on a full disk');
        const held = await agentStatus(stateDir);
        assert.equal(held.agent.journal_stalled, true);
        assert.ok(total(held) < sent, 'nothing past the full journal was counted');
        const health = await rawRequest(gw, { path: '/health' });
        assert.equal(health.json.events.dropped, 0);
        free();
        await agent.waitForLog(/journal writable again/, 30000);
        const st = await waitTotal(stateDir, sent);
        assert.equal(total(st), sent, 'every request counted exactly once');
        assert.equal(st.agent.journal_stalled, false);
        await gw.stop();
        await agent.stop();
    });
