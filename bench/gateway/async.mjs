// bench/gateway/async.mjs - latency pii-detector adds to a request, sync vs `mode: async`
// SPDX-License-Identifier: Apache-2.0
//
//   node bench/gateway/async.mjs [--kt build-release/kt] [--requests 2000] [--words 400]
//                                [--rounds 3]
//
// Starts a local upstream answering bench/gateway/upstream.json at once, then one kt gateway
// per config, each with the product page's chain (examples/policy-config.yaml):
//   page-redact   the page's config verbatim: pii-detector action redact (sync)
//   flag-sync     pii-detector action flag, mode sync
//   flag-async    pii-detector action flag, mode async (detection after forwarding)
//   no-pii        the chain without pii-detector (what the detector adds is measured from here)
// and sends --requests sequential POST /v1/chat/completions (one keep-alive connection, one
// request at a time, so nothing queues) to each, and to the upstream directly. The prompt is
// --words words of ordinary text with a name, an e-mail address and a phone number in it. Each
// request is timed from write to the last byte of the answer. The first 10 % of each run is
// a warm-up. With --rounds R every config runs R times in turn so a busy spell of the machine
// hits all of them; the table shows the medians over rounds. Prints, per config, p50 and p99
// latency, the added p50 over the direct path and the gateway's own x-kt-overhead-ms p50, and
// at the end what pii-detector adds in sync mode and in async mode over no-pii, by kt's own
// overhead p50 and by the client's latency p50.
// Numbers depend on the machine: run it by hand, never from a test.

import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function args(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i += 2) {
        out[argv[i].replace(/^--/, '')] = argv[i + 1];
    }
    return out;
}

const a = args(process.argv.slice(2));
const KT = path.resolve(ROOT, a.kt || process.env.KT_BIN || 'build-release/kt');
const N = Number(a.requests || 2000);
const WORDS = Number(a.words || 400);
const ROUNDS = Number(a.rounds || 3);
const ANSWER = readFileSync(path.join(ROOT, 'bench/gateway/upstream.json'));

const FILLER = ('the validation loss of the baseline run fell steadily across the first epochs '
    + 'while the learning rate schedule warmed up and the batch size stayed fixed ').split(' ');
function prompt() {
    const w = [];
    for (let i = 0; i < WORDS; i++) {
        w.push(FILLER[i % FILLER.length]);
        if (i === Math.floor(WORDS / 3)) {
            w.push('please send the summary to Jane Doe at jane.doe@example.com');
        }
        if (i === Math.floor((2 * WORDS) / 3)) {
            w.push('or call her on +1 415 555 0100');
        }
    }
    return w.join(' ');
}
const BODY = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: prompt() }] });

const PAGE = readFileSync(path.join(ROOT, 'examples/policy-config.yaml'), 'utf8');
function configFor(name, baseUrl) {
    let y = PAGE.replace('      secret_key_ref: {env: OPENAI_API_KEY}',
        `      secret_key_ref: {env: OPENAI_API_KEY}\n      base_url: ${baseUrl}`);
    const pii = {
        'page-redact': null,
        'flag-sync': '  pii-detector: {action: flag, mode: sync, entities: [PERSON, EMAIL_ADDRESS]}',
        'flag-async': '  pii-detector: {action: flag, mode: async, entities: [PERSON, EMAIL_ADDRESS]}',
        'no-pii': null,
    }[name];
    if (pii) {
        y = y.replace(/^ {2}pii-detector: .*$/m, pii);
    }
    if (name === 'no-pii') {
        y = y.replace('chain: [prompt-injection, pii-detector, audit-logger]',
            'chain: [prompt-injection, audit-logger]');
    }
    return y;
}

function startUpstream() {
    const srv = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
            res.writeHead(200, { 'content-type': 'application/json',
                'content-length': ANSWER.length });
            res.end(ANSWER);
        });
    });
    return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

function startKt(name, upstreamPort, work) {
    const dir = mkdtempSync(path.join(work, `${name}-`));
    const cfg = path.join(dir, 'policy-config.yaml');
    writeFileSync(cfg, configFor(name, `http://127.0.0.1:${upstreamPort}/v1`));
    const child = spawn(KT, ['gateway', 'run', '--listen', '127.0.0.1:0', '--policy-config', cfg,
        '--state-dir', path.join(dir, 'state'), '--workers', '1'],
    { env: { ...process.env, OPENAI_API_KEY: 'sk-bench' },
        stdio: ['ignore', 'ignore', 'pipe'] });
    return new Promise((resolve, reject) => {
        let err = '';
        child.stderr.on('data', (d) => {
            err += d;
            const m = /msg="?listening"?[^\n]*?\baddr="?[^\s":]+:(\d+)/.exec(err);
            if (m) {
                child.stderr.removeAllListeners('data');
                child.stderr.resume();
                resolve({ child, port: Number(m[1]) });
            }
        });
        child.on('exit', (code) => reject(new Error(`kt ${name} exited ${code}: ${err}`)));
    });
}

function once(agent, port) {
    return new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions',
            method: 'POST', agent, headers: { 'content-type': 'application/json',
                'content-length': Buffer.byteLength(BODY), authorization: 'Bearer unused' } },
        (res) => {
            res.resume();
            res.on('end', () => {
                if (res.statusCode !== 200) {
                    reject(new Error(`HTTP ${res.statusCode}`));
                    return;
                }
                resolve({ us: Number(process.hrtime.bigint() - t0) / 1000,
                    overheadMs: Number(res.headers['x-kt-overhead-ms'] || 0) });
            });
        });
        req.on('error', reject);
        req.end(BODY);
    });
}

const pct = (v, p) => v[Math.min(v.length - 1, Math.floor((p / 100) * v.length))];
const median = (v) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];

async function measure(port) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const lat = [];
    const ovh = [];
    const warm = Math.floor(N / 10);
    for (let i = 0; i < N + warm; i++) {
        const r = await once(agent, port);
        if (i >= warm) {
            lat.push(r.us);
            ovh.push(r.overheadMs * 1000);
        }
    }
    agent.destroy();
    lat.sort((x, y) => x - y);
    ovh.sort((x, y) => x - y);
    return { p50: pct(lat, 50), p99: pct(lat, 99), ovh50: pct(ovh, 50) };
}

const work = mkdtempSync(path.join(tmpdir(), 'kt-bench-async-'));
const up = await startUpstream();
const upPort = up.address().port;
const names = ['page-redact', 'flag-sync', 'flag-async', 'no-pii'];
const kts = {};
try {
    for (const n of names) {
        kts[n] = await startKt(n, upPort, work);
    }
    const res = Object.fromEntries(['direct', ...names].map((n) => [n, []]));
    for (let r = 0; r < ROUNDS; r++) {
        res.direct.push(await measure(upPort));
        for (const n of names) {
            res[n].push(await measure(kts[n].port));
        }
    }
    const med = (n, k) => median(res[n].map((x) => x[k]));
    const d50 = med('direct', 'p50');
    console.log(`kt ${KT}; ${N} sequential requests per run, ${ROUNDS} round(s), prompt of ` +
        `${Buffer.byteLength(BODY)} bytes (${WORDS} words, one name, e-mail, phone)`);
    console.log('config        p50_us   p99_us   added_p50_us   kt_overhead_p50_us');
    for (const n of ['direct', ...names]) {
        console.log(`${n.padEnd(12)} ${String(Math.round(med(n, 'p50'))).padStart(7)} ` +
            `${String(Math.round(med(n, 'p99'))).padStart(8)} ` +
            `${String(n === 'direct' ? '-' : Math.round(med(n, 'p50') - d50)).padStart(14)} ` +
            `${String(n === 'direct' ? '-' : Math.round(med(n, 'ovh50'))).padStart(20)}`);
    }
    // Two views of the same difference: the client's p50 (noisier: it includes the client
    // and the upstream sharing this process) and kt's own x-kt-overhead-ms p50.
    for (const [k, what] of [['ovh50', 'kt overhead p50'], ['p50', 'client latency p50']]) {
        const base = med('no-pii', k);
        console.log(`pii-detector adds (${what} over no-pii): ` +
            `sync flag ${Math.round(med('flag-sync', k) - base)} us, ` +
            `sync redact (the page) ${Math.round(med('page-redact', k) - base)} us, ` +
            `async flag ${Math.round(med('flag-async', k) - base)} us`);
    }
} finally {
    await Promise.all(Object.values(kts).map((k) => new Promise((resolve) => {
        k.child.on('exit', resolve);
        k.child.kill('SIGTERM');
    })));
    up.close();
    rmSync(work, { recursive: true, force: true });
}
