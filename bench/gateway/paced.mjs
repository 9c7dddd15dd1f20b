// bench/gateway/paced.mjs - a fixed-rate load: latency when nothing is saturated
// SPDX-License-Identifier: Apache-2.0
//
//   node paced.mjs --url http://127.0.0.1:PORT --rate 500 --duration-s 10 [--conns 16] [--sse]
//   node paced.mjs --targets direct=URL,nginx=URL,kt=URL --rate 500 --duration-s 30
//                  [--slice-ms 200] [--conns 16] [--sse]
//
// wrk sends as fast as answers come back, so its latencies are those of a saturated server.
// This sends POST /v1/chat/completions (the body of post.lua) at a fixed rate instead, over
// --conns keep-alive connections per target opened up front, and measures each request from
// the moment it is written until its answer has been read whole. Sends follow an absolute
// schedule (t0 + i / rate), so a slow answer does not slow the rate down; a send finds a free
// connection or waits for one, and that wait counts in its latency. The first second is a
// warm-up and not counted.
//
// With --targets the one schedule is shared: it goes to each target in turn for --slice-ms,
// the order rotating every cycle, so every target sees the machine in the same state. Run one
// target after another instead and a p50 of ~0.5 ms moves by a quarter of a millisecond
// between runs of the same target, more than a proxy adds; interleaved, that drift falls on all
// of them alike and the differences of their p50s stand still.
// Prints one line per target:
//   PACED target=NAME sent=N ok=N errors=N p50_us=N p90_us=N p99_us=N rate=R
// (rate: the sends a second, which each target gets while it is its turn). Errors are non-2xx
// answers and socket errors.

import http from 'node:http';

function args(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--sse') {
            out.sse = true;
        } else if (argv[i].startsWith('--')) {
            out[argv[i].slice(2)] = argv[i + 1];
            i++;
        }
    }
    return out;
}

const a = args(process.argv.slice(2));
const rate = Number(a.rate || 500);
const durationS = Number(a['duration-s'] || 10);
const conns = Number(a.conns || 16);
const sliceMs = Number(a['slice-ms'] || 200);
const warmS = 1;
const targets = (a.targets ? a.targets.split(',') : [`target=${a.url}`]).map((spec) => {
    const eq = spec.indexOf('=');
    return {
        name: spec.slice(0, eq),
        url: new URL('/v1/chat/completions', spec.slice(eq + 1)),
        agent: new http.Agent({ keepAlive: true, maxSockets: conns, maxFreeSockets: conns }),
        lat: [],
        sent: 0,
        ok: 0,
        errors: 0,
    };
});
const body = a.sse
    ? '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":' +
      '"Summarise the validation loss trend of run 42 in one sentence."}]}'
    : '{"model":"gpt-4o","messages":[{"role":"user","content":' +
      '"Summarise the validation loss trend of run 42 in one sentence."}]}';
const headers = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    authorization: 'Bearer unused',
    accept: a.sse ? 'text/event-stream' : 'application/json',
};
let pending = 0;

function one(t, counted) {
    return new Promise((resolve) => {
        const t0 = process.hrtime.bigint();
        const done = (good) => {
            const us = Number(process.hrtime.bigint() - t0) / 1000;
            if (counted) {
                if (good) {
                    t.ok++;
                    t.lat.push(us);
                } else {
                    t.errors++;
                }
            }
            resolve();
        };
        const req = http.request(t.url, { method: 'POST', agent: t.agent, headers }, (res) => {
            res.on('data', () => {});
            res.on('end', () => done(res.statusCode >= 200 && res.statusCode < 300));
            res.on('error', () => done(false));
        });
        req.on('error', () => done(false));
        req.end(body);
    });
}

// Opens every connection before the clock starts, so no connect is measured.
await Promise.all(targets.flatMap((t) => Array.from({ length: conns }, () => one(t, false))));

// The target of send i: slices of sliceMs, each cycle of slices in another rotation.
function targetOf(i) {
    const slice = Math.floor((i * 1000) / rate / sliceMs);
    const cycle = Math.floor(slice / targets.length);
    return targets[(slice + cycle) % targets.length];
}

const total = Math.round(rate * (durationS + warmS));
const start = performance.now();
let i = 0;
await new Promise((resolve) => {
    const tick = () => {
        const now = performance.now();
        while (i < total && start + (i * 1000) / rate <= now) {
            const counted = i >= rate * warmS;
            const t = targetOf(i);
            if (counted) {
                t.sent++;
            }
            pending++;
            one(t, counted).then(() => {
                pending--;
                if (i >= total && pending === 0) {
                    resolve();
                }
            });
            i++;
        }
        if (i < total) {
            setTimeout(tick, Math.max(0, start + (i * 1000) / rate - performance.now()));
        } else if (pending === 0) {
            resolve();
        }
    };
    tick();
});
const elapsed = (performance.now() - start) / 1000;
for (const t of targets) {
    t.agent.destroy();
    t.lat.sort((x, y) => x - y);
    const pct = (p) => (t.lat.length ? Math.round(t.lat[Math.min(t.lat.length - 1,
        Math.max(0, Math.ceil((p / 100) * t.lat.length) - 1))]) : 0);
    process.stdout.write(`PACED target=${t.name} sent=${t.sent} ok=${t.ok} errors=${t.errors} ` +
        `p50_us=${pct(50)} p90_us=${pct(90)} p99_us=${pct(99)} ` +
        `rate=${(i / elapsed).toFixed(1)}\n`);
}
