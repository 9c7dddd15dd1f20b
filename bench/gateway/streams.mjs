// bench/gateway/streams.mjs - the two node halves of bench/gateway/streams.sh
// SPDX-License-Identifier: Apache-2.0
//
//   node streams.mjs upstream --port P --words W --delay-ms D
//       The OpenAI stand-in of the e2e tests (tests/e2e/lib/upstream.mjs) on 127.0.0.1:P. Every
//       stream is one role event, W content deltas (one word each) D ms apart, a finish event
//       and `data: [DONE]`. Prints `ready <port>` once it listens; runs until SIGTERM.
//   node streams.mjs client --url URL --n N --words W [--ramp-ms R] [--timeout-ms T]
//                           [--max-inflight M] [--raw]
//       Opens N concurrent POST /v1/chat/completions with stream:true against URL, started
//       evenly over R ms, each on its own keep-alive socket (node's http, one agent allowing N
//       sockets); with M, a start waits while M streams are in flight (an open-file limit too
//       low for N at once). A stream counts as completed only when it answered 200 with
//       text/event-stream, its content deltas join to the stand-in's text and it ended with
//       `data: [DONE]`; anything else, or not done within T ms, counts as failed. Prints one
//       line `RESULT {json}` with the counts, wall time, first-byte and total-time percentiles
//       (ms) and the most streams it saw in flight at once; with --raw the line also carries
//       every stream's first-byte and total times, for merge.
//   node streams.mjs merge
//       Reads the RESULT --raw lines of several client processes (one load split over them,
//       since one node process cannot keep up with 10,000 streams) from stdin and prints one
//       RESULT line for all: counts and failures added, wall time the longest, percentiles over
//       all streams, in flight the sum of each process's most (an upper bound: the processes
//       run side by side).
// Both halves build the reply text from W the same way (replyText), so they agree on it.

import http from 'node:http';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function args(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i++) {
        if (argv[i].startsWith('--')) {
            const next = argv[i + 1];
            if (next === undefined || next.startsWith('--')) {
                out[argv[i].slice(2)] = true; /* a flag */
            } else {
                out[argv[i].slice(2)] = next;
                i++;
            }
        }
    }
    return out;
}

function num(a, name, dflt) {
    const v = a[name] === undefined ? dflt : Number(a[name]);
    if (!Number.isFinite(v) || v < 0) {
        throw new Error(`--${name} needs a number`);
    }
    return v;
}

/** W words; the stand-in streams each word (with its leading space) as one delta. Plain lower
 * case words, so the gateway's response policies have nothing to redact. */
export function replyText(words) {
    const vocab = ['the', 'validation', 'loss', 'fell', 'steadily', 'over', 'ten', 'epochs',
        'while', 'training', 'accuracy', 'kept', 'rising', 'without', 'overfitting'];
    const w = [];
    for (let i = 0; i < words; i++) {
        w.push(vocab[i % vocab.length]);
    }
    return w.join(' ');
}

async function upstream(a) {
    // startUpstream() listens with node's default backlog, 511: at thousands of connects a
    // second from the proxy its accept queue would overflow and those connects would wait for
    // a SYN retransmit (1 s), charged to whichever target is measured. The stand-in's one
    // listen() call gets the backlog the kernel allows (net.core.somaxconn caps it).
    const listen = http.Server.prototype.listen;
    http.Server.prototype.listen = function (port, host, cb) {
        return listen.call(this, port, host, num(a, 'backlog', 4096), cb);
    };
    const { startUpstream } = await import(path.join(HERE, '../../tests/e2e/lib/upstream.mjs'));
    const behave = { text: replyText(num(a, 'words', 15)), chunkDelayMs: num(a, 'delay-ms', 200) };
    const up = await startUpstream({ port: num(a, 'port', 0), behave });
    // The stand-in keeps a record of every request for the tests to inspect (headers, raw and
    // parsed body): ~5 KB each, 30 MB more RSS after 6000 streams, and more for its GC to walk.
    // A benchmark never reads them, so they are dropped every second; reset() keeps
    // opts.behave, the only behaviour used here.
    const drop = setInterval(() => up.reset(), 1000);
    const stop = async () => {
        clearInterval(drop);
        await up.close();
        process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.stdout.write(`ready ${up.port}\n`);
}

function pct(sorted, p) {
    if (sorted.length === 0) {
        return null;
    }
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[i];
}

/** Feeds SSE bytes; collects content deltas and remembers whether [DONE] came last. */
class SseCheck {
    constructor() {
        this.rest = '';
        this.text = '';
        this.done = false;
        this.afterDone = false;
        this.bad = null;
    }

    feed(s) {
        this.rest += s;
        let at;
        while ((at = this.rest.search(/\r?\n\r?\n/)) >= 0) {
            const ev = this.rest.slice(0, at);
            this.rest = this.rest.slice(at).replace(/^\r?\n\r?\n/, '');
            this.event(ev);
        }
    }

    event(ev) {
        let data = null;
        for (const line of ev.split(/\r?\n/)) {
            if (line.startsWith('data:')) {
                const d = line.slice(5).replace(/^ /, '');
                data = data === null ? d : `${data}\n${d}`;
            }
        }
        if (data === null) {
            return; /* comment or keep-alive */
        }
        if (this.done) {
            this.afterDone = true;
            return;
        }
        if (data === '[DONE]') {
            this.done = true;
            return;
        }
        let obj;
        try {
            obj = JSON.parse(data);
        } catch {
            this.bad = this.bad || 'event is not JSON';
            return;
        }
        if (obj.error) {
            this.bad = this.bad || 'error event';
            return;
        }
        const c = obj.choices && obj.choices[0];
        if (c && c.delta && typeof c.delta.content === 'string') {
            this.text += c.delta.content;
        }
    }
}

async function client(a) {
    const url = new URL('/v1/chat/completions', a.url);
    const n = num(a, 'n', 2000);
    const rampMs = num(a, 'ramp-ms', 1500);
    const timeoutMs = num(a, 'timeout-ms', 60000);
    const maxInflight = num(a, 'max-inflight', n);
    const want = replyText(num(a, 'words', 15));
    const body = JSON.stringify({
        model: 'gpt-4o',
        stream: true,
        // Asked for, so every target sees the same upstream stream: kt asks the upstream for
        // usage itself when the client does not (one more event, one more delay).
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'Summarise the validation loss trend of run 42.' }],
    });
    // No more sockets than streams allowed in flight: a capped run is capped for the proxy's
    // descriptors, and idle keep-alive sockets count there too.
    const agent = new http.Agent({ keepAlive: true, maxSockets: maxInflight,
        maxFreeSockets: maxInflight });

    const ttfb = [];
    const total = [];
    const failures = {};
    let ok = 0;
    let inflight = 0;
    let maxInflightSeen = 0;
    const fail = (why) => {
        failures[why] = (failures[why] || 0) + 1;
    };

    function one() {
        return new Promise((resolve) => {
            const t0 = performance.now();
            let first = null;
            let settled = false;
            const check = new SseCheck();
            inflight++;
            maxInflightSeen = Math.max(maxInflightSeen, inflight);
            const finish = (why) => {
                if (settled) {
                    return;
                }
                settled = true;
                inflight--;
                clearTimeout(timer);
                if (why) {
                    fail(why);
                } else {
                    ok++;
                    ttfb.push(first - t0);
                    total.push(performance.now() - t0);
                }
                resolve();
            };
            const req = http.request(url, {
                method: 'POST',
                agent,
                headers: {
                    'content-type': 'application/json',
                    'content-length': Buffer.byteLength(body),
                    authorization: 'Bearer unused',
                    accept: 'text/event-stream',
                },
            }, (res) => {
                const ct = String(res.headers['content-type'] || '');
                if (res.statusCode !== 200 || !ct.startsWith('text/event-stream')) {
                    res.resume();
                    finish(res.statusCode !== 200 ? `status ${res.statusCode}`
                        : `content-type ${ct || '(none)'}`);
                    return;
                }
                res.setEncoding('utf8');
                res.on('data', (s) => {
                    if (first === null) {
                        first = performance.now();
                    }
                    check.feed(s);
                });
                res.on('end', () => {
                    if (check.bad) {
                        finish(check.bad);
                    } else if (!check.done) {
                        finish('no [DONE]');
                    } else if (check.afterDone) {
                        finish('events after [DONE]');
                    } else if (check.text !== want) {
                        finish('content differs');
                    } else {
                        finish(null);
                    }
                });
                res.on('error', (e) => finish(`response ${e.code || e.message}`));
                res.on('aborted', () => finish('response aborted'));
                res.on('close', () => finish('closed before the end'));
            });
            const timer = setTimeout(() => {
                finish('timeout');
                req.destroy();
            }, timeoutMs);
            req.on('error', (e) => finish(`request ${e.code || e.message}`));
            req.end(body);
        });
    }

    const t0 = performance.now();
    const all = [];
    const tick = 10;
    const perTick = rampMs > 0 ? Math.max(1, Math.ceil((n * tick) / rampMs)) : n;
    await new Promise((resolve) => {
        const start = () => {
            for (let i = 0; i < perTick && all.length < n && inflight < maxInflight; i++) {
                all.push(one());
            }
            if (all.length < n) {
                setTimeout(start, tick);
            } else {
                resolve();
            }
        };
        start();
    });
    await Promise.all(all);
    const wallMs = performance.now() - t0;
    agent.destroy();

    ttfb.sort((x, y) => x - y);
    total.sort((x, y) => x - y);
    const r = (v) => (v === null ? null : Math.round(v * 10) / 10);
    const out = {
        n,
        ok,
        failed: n - ok,
        failures,
        wall_ms: r(wallMs),
        ttfb_p50_ms: r(pct(ttfb, 50)),
        ttfb_p99_ms: r(pct(ttfb, 99)),
        total_p50_ms: r(pct(total, 50)),
        total_p99_ms: r(pct(total, 99)),
        max_inflight: maxInflightSeen,
    };
    if (a.raw !== undefined) {
        out.ttfb = ttfb.map(r);
        out.total = total.map(r);
    }
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

async function merge() {
    let input = '';
    for await (const chunk of process.stdin) {
        input += chunk;
    }
    const parts = input.split('\n').filter((l) => l.startsWith('RESULT '))
        .map((l) => JSON.parse(l.slice(7)));
    const ttfb = parts.flatMap((p) => p.ttfb || []).sort((x, y) => x - y);
    const total = parts.flatMap((p) => p.total || []).sort((x, y) => x - y);
    const failures = {};
    for (const p of parts) {
        for (const [k, v] of Object.entries(p.failures)) {
            failures[k] = (failures[k] || 0) + v;
        }
    }
    const sum = (k) => parts.reduce((acc, p) => acc + p[k], 0);
    const out = {
        n: sum('n'),
        ok: sum('ok'),
        failed: sum('failed'),
        failures,
        wall_ms: Math.max(0, ...parts.map((p) => p.wall_ms)),
        ttfb_p50_ms: pct(ttfb, 50),
        ttfb_p99_ms: pct(ttfb, 99),
        total_p50_ms: pct(total, 50),
        total_p99_ms: pct(total, 99),
        max_inflight: sum('max_inflight'),
        clients: parts.length,
    };
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

const [mode, ...rest] = process.argv.slice(2);
const a = args(rest);
if (mode === 'upstream') {
    await upstream(a);
} else if (mode === 'client') {
    await client(a);
} else if (mode === 'merge') {
    await merge();
} else {
    process.stderr.write('usage: node streams.mjs upstream|client|merge [--option value ...]\n');
    process.exit(2);
}
