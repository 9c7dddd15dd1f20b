// bench/gateway/paced.mjs - a fixed-rate load: latency when nothing is saturated
// SPDX-License-Identifier: Apache-2.0
//
//   node paced.mjs --url http://127.0.0.1:PORT --rate 500 --duration-s 10 [--conns 16] [--sse]
//
// wrk sends as fast as answers come back, so its latencies are those of a saturated server.
// This sends POST /v1/chat/completions (the body of post.lua) at a fixed rate instead, over
// --conns keep-alive connections opened up front, and measures each request from the moment it
// is written until its answer has been read whole. Sends follow an absolute schedule (t0 + i /
// rate), so a slow answer does not slow the rate down; a send finds a free connection or waits
// for one, and that wait counts in its latency. The first second is a warm-up and not counted.
// Prints one line:
//   PACED sent=N ok=N errors=N p50_us=N p90_us=N p99_us=N rate=R
// Errors are non-2xx answers and socket errors.

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
const url = new URL('/v1/chat/completions', a.url);
const rate = Number(a.rate || 500);
const durationS = Number(a['duration-s'] || 10);
const conns = Number(a.conns || 16);
const warmS = 1;
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
const agent = new http.Agent({ keepAlive: true, maxSockets: conns, maxFreeSockets: conns });

const lat = [];
let sent = 0;
let ok = 0;
let errors = 0;
let pending = 0;

function one(counted) {
    return new Promise((resolve) => {
        const t0 = process.hrtime.bigint();
        const done = (good) => {
            const us = Number(process.hrtime.bigint() - t0) / 1000;
            if (counted) {
                if (good) {
                    ok++;
                    lat.push(us);
                } else {
                    errors++;
                }
            }
            resolve();
        };
        const req = http.request(url, { method: 'POST', agent, headers }, (res) => {
            res.on('data', () => {});
            res.on('end', () => done(res.statusCode >= 200 && res.statusCode < 300));
            res.on('error', () => done(false));
        });
        req.on('error', () => done(false));
        req.end(body);
    });
}

// Opens every connection before the clock starts, so no connect is measured.
await Promise.all(Array.from({ length: conns }, () => one(false)));

const total = Math.round(rate * (durationS + warmS));
const start = performance.now();
let i = 0;
await new Promise((resolve) => {
    const tick = () => {
        const now = performance.now();
        while (i < total && start + (i * 1000) / rate <= now) {
            const counted = i >= rate * warmS;
            if (counted) {
                sent++;
            }
            pending++;
            one(counted).then(() => {
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
agent.destroy();

lat.sort((x, y) => x - y);
const pct = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1,
    Math.max(0, Math.ceil((p / 100) * lat.length) - 1))]) : 0);
process.stdout.write(`PACED sent=${sent} ok=${ok} errors=${errors} p50_us=${pct(50)} ` +
    `p90_us=${pct(90)} p99_us=${pct(99)} rate=${(i / elapsed).toFixed(1)}\n`);
