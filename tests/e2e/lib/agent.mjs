// tests/e2e/lib/agent.mjs - run `kt agent run` beside a gateway and read its aggregates
// SPDX-License-Identifier: Apache-2.0

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';

import { makeTempDir, runKt, spawnKt, testEnv } from './proc.mjs';
import { sleep } from './suite.mjs';

/** The agent's ready line: `msg="listening" socket=...`. */
export const AGENT_READY_RE = /msg="?listening"?[^\n]*\bsocket=/;
const METRICS_RE = /msg="?metrics listening"?[^\n]*\bport=(\d+)/;

/**
 * Start `kt agent run --state-dir <dir>` (share the dir with startGateway({stateDir}) so both
 * agree on <dir>/agent.sock with no flags).
 * opts.stateDir  default: a fresh temp dir
 * opts.metrics   true: --metrics-listen 127.0.0.1:0, the port is in .metricsPort
 * opts.flush     --flush-interval seconds (default 0.2, so /metrics follows quickly)
 * opts.args      extra arguments
 * Returns { stateDir, metricsPort, proc, stderr(), waitForLog(), stop(opts), kill9() }.
 */
export async function startAgent(opts = {}) {
    const stateDir = opts.stateDir || path.join(makeTempDir('kt-e2e-agent-'), 'state');
    const args = ['agent', 'run', '--state-dir', stateDir, '--flush-interval',
        String(opts.flush ?? 0.2), ...(opts.metrics ? ['--metrics-listen', '127.0.0.1:0'] : []),
        ...(opts.args || [])];
    const proc = await spawnKt(args, { env: testEnv(opts.env || {}), ready: AGENT_READY_RE,
        name: 'kt agent', timeoutMs: opts.readyTimeoutMs || 30000 });
    let metricsPort = null;
    if (opts.metrics) {
        metricsPort = Number((await proc.waitForLog(METRICS_RE, 10000))[1]);
    }
    return {
        proc,
        stateDir,
        metricsPort,
        stderr: proc.stderr,
        waitForLog: proc.waitForLog,
        stop: proc.stop,
        /** SIGKILL: no flush, no checkpoint; only the journal survives. */
        kill9: () => proc.stop({ signal: 'SIGKILL', expectCode: null }),
    };
}

/** `kt agent status --json` for the agent on stateDir: { agent, runs: [...] }. */
export async function agentStatus(stateDir) {
    const r = await runKt(['agent', 'status', '--json', '--state-dir', stateDir]);
    if (r.code !== 0) {
        throw new Error(`kt agent status exited ${r.code}: ${r.stderr}`);
    }
    return JSON.parse(r.stdout);
}

/** Requests counted over every run in a status document. */
export function statusTotal(status) {
    return status.runs.reduce((n, r) => n + r.requests, 0);
}

/**
 * Bounded poll of `kt agent status`: the status once the agent on stateDir has counted `want`
 * requests in all. A status that fails (the agent restarting or busy) is polled again.
 */
export async function waitAgentTotal(stateDir, want, limitMs = 30000) {
    let st = null;
    for (let waited = 0; waited < limitMs; waited += 100) {
        try {
            st = await agentStatus(stateDir);
            if (statusTotal(st) >= want) {
                return st;
            }
        } catch {
            /* the agent may be restarting or busy */
        }
        await sleep(100);
    }
    assert.fail(`agent counted ${st ? statusTotal(st) : 'nothing'} requests, wanted ${want}`);
    return st;
}

/** GET /metrics from the agent's Prometheus endpoint, as text. */
export function agentMetrics(agent) {
    return new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: agent.metricsPort, path: '/metrics', agent: false },
            (res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (d) => {
                    body += d;
                });
                res.on('end',
                    () => resolve({ status: res.statusCode, headers: res.headers, body }));
            }).on('error', reject);
    });
}
