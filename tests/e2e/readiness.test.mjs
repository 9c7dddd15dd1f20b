// tests/e2e/readiness.test.mjs - /health and /readyz tell a load balancer when chat requests fail
// SPDX-License-Identifier: Apache-2.0
//
// A gateway whose descriptors run out cannot accept connections, reach its upstream or write
// its audit log, and with audit-logger `on_failure: block` every chat request gets 503. Its
// readiness (/health, /readyz) must then be 503 "degraded" with the reasons, while /livez stays
// 200 (the process serves; restarting it would not help). When descriptors come back, so does
// readiness. The descriptor limit of the running gateway is lowered with prlimit(1).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

import { upstreamSuite, startGateway, rawRequest, chatBody, sleep } from './lib/index.mjs';

const suite = upstreamSuite();

function havePrlimit() {
    try {
        execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
        return true;
    } catch {
        return false;
    }
}

const openFds = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const setNofile = (pid, soft, hard) =>
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
const getNofile = (pid) => execFileSync('prlimit', ['--pid', String(pid), '--nofile',
    '--noheadings', '--output=SOFT,HARD', '--raw']).toString().trim().split(/\s+/);

/** Polls fn (no timing assertion: a bounded number of tries) until it returns a truthy value. */
async function until(fn, what, tries = 600) {
    let last;
    for (let i = 0; i < tries; i++) {
        last = await fn();
        if (last.ok) {
            return last.value;
        }
        await sleep(50);
    }
    throw new Error(`${what}; last: ${JSON.stringify(last.value)}`);
}

test('a healthy gateway is ready and live; /health keeps its fields', async () => {
    const gw = await startGateway({ upstream: suite.up });
    suite.cleanups.push(() => gw.stop());
    for (const path of ['/health', '/readyz']) {
        const r = await rawRequest(gw, { path });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json.status, 'ok');
        assert.deepEqual(r.json.reasons, []);
        assert.ok(r.json.connections.max > 0);
        assert.ok(r.json.chain.includes('audit-logger'));
    }
    const l = await rawRequest(gw, { path: '/livez' });
    assert.equal(l.status, 200);
    assert.deepEqual(l.json, { status: 'ok' });
    assert.equal((await rawRequest(gw, { method: 'POST', path: '/livez' })).status, 405);
});

/**
 * Lowers the running gateway's descriptor limit to what it holds plus a few, then fills those
 * with idle client connections until it logs that it cannot accept. Returns probe(path, opts)
 * over one keep-alive connection opened before, and release().
 */
async function exhaust(gw) {
    const pid = gw.proc.pid;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const probe = (path, extra = {}) => rawRequest(gw, { path, agent, ...extra });
    assert.equal((await probe('/v1/models')).status, 200);
    const [soft, hard] = getNofile(pid);
    const sockets = [];
    const release = () => {
        for (const s of sockets) {
            s.destroy();
        }
        setNofile(pid, soft, hard);
    };
    try {
        setNofile(pid, openFds(pid) + 4, hard);
        for (let i = 0; i < 16; i++) {
            sockets.push(net.connect(gw.port, '127.0.0.1').on('error', () => {}));
        }
        await gw.waitForLog(/cannot accept connections[^\n]*Too many open files/, 30000);
    } catch (e) {
        release();
        throw e;
    }
    return { probe, release, agent };
}

const skipFds = !havePrlimit() && 'prlimit(1) is not installed';

test('out of descriptors: the audit error line names EMFILE, not a stale errno',
    { skip: skipFds }, async () => {
        const gw = await startGateway({ upstream: suite.up, gateway: { header_timeout: '5m' } });
        suite.cleanups.push(() => gw.stop());
        const { probe, release, agent } = await exhaust(gw);
        try {
            /* The request cannot reach the upstream; its audit record cannot be written. */
            const chat = await probe('/v1/chat/completions', { method: 'POST', body: chatBody() });
            assert.ok(chat.status >= 500, `chat with no descriptors: ${chat.status} ${chat.body}`);
            const [line] = await gw.waitForLog(/[^\n]*cannot write the audit log[^\n]*/, 30000);
            assert.match(line, /errno="?Too many open files/, line);
        } finally {
            release();
            agent.destroy();
        }
    });

test('out of descriptors: readiness is 503 degraded with the reasons, liveness stays 200',
    { skip: skipFds }, async () => {
        const gw = await startGateway({ upstream: suite.up,
            gateway: { header_timeout: '5m', max_connections: 1000 } });
        suite.cleanups.push(() => gw.stop());
        const { probe, release, agent } = await exhaust(gw);
        try {
            /* A chat request cannot reach the upstream; the audit writer cannot record it. */
            const chat = await probe('/v1/chat/completions', { method: 'POST', body: chatBody() });
            assert.ok(chat.status >= 500, `chat with no descriptors: ${chat.status} ${chat.body}`);
            const h = await until(async () => {
                const r = await probe('/health');
                return { ok: r.status === 503 && r.json.reasons.some((x) => /audit/.test(x)),
                    value: r };
            }, '/health never reported the audit log');
            assert.equal(h.json.status, 'degraded');
            assert.equal(h.headers['retry-after'], '1');
            assert.ok(h.json.reasons.some((x) =>
                /audit log cannot be written \(Too many open files\)/.test(x)), h.body);
            assert.ok(h.json.version && h.json.chain, 'the report keeps its fields');
            const chat2 = await probe('/v1/chat/completions', { method: 'POST', body: chatBody() });
            assert.equal(chat2.status, 503, chat2.body);
            assert.equal(chat2.json.error.code, 'audit_unavailable');
            const rz = await probe('/readyz');
            assert.equal(rz.status, 503, rz.body);
            assert.deepEqual(rz.json.reasons, (await probe('/health')).json.reasons);
            const lz = await probe('/livez');
            assert.equal(lz.status, 200, 'liveness does not depend on readiness');
        } finally {
            release();
        }
        /* Descriptors are back: the writer retries and readiness returns. */
        await until(async () => {
            const r = await probe('/health');
            return { ok: r.status === 200, value: r.body };
        }, '/health did not recover');
        const ok = await probe('/v1/chat/completions', { method: 'POST', body: chatBody() });
        assert.equal(ok.status, 200, ok.body);
        agent.destroy();
    });
