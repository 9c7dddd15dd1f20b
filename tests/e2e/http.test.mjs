// tests/e2e/http.test.mjs - the gateway's own HTTP/1.1 server: framing, limits, deadlines, caps
// SPDX-License-Identifier: Apache-2.0
//
// Raw sockets, so the bytes on the wire are exactly the ones under test: smuggling shapes,
// pipelining, HTTP/1.0, 100-continue, HEAD, half-closed clients, slow clients and the
// connection cap. Every refusal must be an OpenAI-shaped JSON error with the right status,
// and a framing error must close the connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startGateway, chatBody, upstreamSuite, sleep } from './lib/index.mjs';

const suite = upstreamSuite();

async function gateway(opts = {}) {
    const gw = await startGateway({ upstream: suite.up, ...opts });
    suite.cleanups.push(() => gw.stop());
    return gw;
}

/** Connect, write `chunks` (strings or Buffers, with optional pauses), collect everything until
 * the server closes or `untilBytes` matches. Resolves { text, closed }. */
function exchange(port, chunks, { until, timeoutMs = 20000, end = false, gapMs = 0 } = {}) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        const parts = [];
        let closed = false;
        let done = false;
        const finish = () => {
            if (done) {
                return;
            }
            done = true;
            clearTimeout(timer);
            sock.destroy();
            resolve({ text: Buffer.concat(parts).toString('latin1'), closed });
        };
        const timer = setTimeout(finish, timeoutMs);
        sock.on('data', (d) => {
            parts.push(d);
            if (until && until(Buffer.concat(parts).toString('latin1'))) {
                finish();
            }
        });
        sock.on('end', () => {
            closed = true;
            finish();
        });
        sock.on('close', () => {
            closed = true;
            finish();
        });
        sock.on('error', (e) => {
            if (e.code === 'ECONNRESET' || e.code === 'EPIPE') {
                closed = true;
                finish();
            } else {
                reject(e);
            }
        });
        sock.on('connect', async () => {
            for (const c of chunks) {
                if (done) {
                    return;
                }
                sock.write(c);
                if (gapMs) {
                    await sleep(gapMs);
                }
            }
            if (end) {
                sock.end();
            }
        });
    });
}

/** Split a byte string holding one or more HTTP responses into {status, headers, body}. */
function parseResponses(text) {
    const out = [];
    let rest = text;
    while (rest.length > 0) {
        const headEnd = rest.indexOf('\r\n\r\n');
        if (headEnd < 0) {
            break;
        }
        const lines = rest.slice(0, headEnd).split('\r\n');
        const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
        assert.ok(m, `status line: ${JSON.stringify(lines[0])}`);
        const headers = {};
        for (const l of lines.slice(1)) {
            const i = l.indexOf(':');
            headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
        }
        rest = rest.slice(headEnd + 4);
        let body = '';
        if (headers['content-length'] !== undefined) {
            const n = Number(headers['content-length']);
            body = rest.slice(0, n);
            rest = rest.slice(n);
        } else if (headers['transfer-encoding'] === 'chunked') {
            for (;;) {
                const eol = rest.indexOf('\r\n');
                const size = parseInt(rest.slice(0, eol), 16);
                rest = rest.slice(eol + 2);
                if (size === 0) {
                    rest = rest.slice(2);
                    break;
                }
                body += rest.slice(0, size);
                rest = rest.slice(size + 2);
            }
        } else if (Number(m[2]) !== 100) {
            body = rest;
            rest = '';
        }
        out.push({ minor: Number(m[1]), status: Number(m[2]), headers, body });
    }
    return out;
}

function assertOpenAIError(r, status, what) {
    assert.equal(r.status, status, `${what}: ${r.status} ${r.body}`);
    assert.match(r.headers['content-type'] || '', /^application\/json/, what);
    const j = JSON.parse(r.body);
    assert.ok(j.error && typeof j.error.message === 'string' && j.error.message.length > 0, what);
    for (const k of ['type', 'code', 'param']) {
        assert.ok(k in j.error, `${what}: error.${k} missing`);
    }
    return j.error;
}

const body = JSON.stringify(chatBody());
const post = (extra, payload = body) =>
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}\r\n${payload}`;

test('malformed and smuggling-shaped requests: OpenAI JSON error with the right status, then close', async () => {
    const gw = await gateway({ maxBodyBytes: 4096 });
    const chunked = (s) => `${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`;
    const cases = [
        ['Content-Length with Transfer-Encoding', 400,
            post(`Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n`, chunked(body))],
        ['two different Content-Length', 400,
            post(`Content-Length: ${body.length}\r\nContent-Length: ${body.length + 1}\r\n`)],
        ['obs-folded header', 400, post(`X-Fold: a\r\n  b\r\nContent-Length: ${body.length}\r\n`)],
        ['bare LF in the head', 400,
            `POST /v1/chat/completions HTTP/1.1\nHost: x\nContent-Length: ${body.length}\n\n${body}`],
        ['bare CR in a header', 400, post(`X-A: a\rb\r\nContent-Length: ${body.length}\r\n`)],
        ['bad chunk size', 400, post('Transfer-Encoding: chunked\r\n', `zz\r\n${body}\r\n0\r\n\r\n`)],
        ['Transfer-Encoding: gzip, chunked', 501,
            post('Transfer-Encoding: gzip, chunked\r\n', chunked(body))],
        ['CONNECT', 501, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'],
        ['HTTP/2.0 request line', 505, 'GET /health HTTP/2.0\r\nHost: x\r\n\r\n'],
        ['too many headers', 431,
            `GET /health HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 80 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`],
        ['a header line over the limit', 431, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`],
        ['a request-target over the limit', 414, `GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
        ['Content-Length over gateway.max_body_bytes', 413, post('Content-Length: 999999\r\n', '')],
        ['chunked body over gateway.max_body_bytes', 413,
            post('Transfer-Encoding: chunked\r\n', chunked('x'.repeat(5000)))],
    ];
    for (const [what, status, bytes] of cases) {
        const { text, closed } = await exchange(gw.port, [bytes]);
        const rs = parseResponses(text);
        assert.equal(rs.length, 1, `${what}: one answer, got ${JSON.stringify(text.slice(0, 300))}`);
        assertOpenAIError(rs[0], status, what);
        assert.equal(rs[0].headers.connection, 'close', `${what}: Connection: close`);
        assert.ok(closed, `${what}: the connection was closed`);
    }
    assert.equal(suite.up.chats().length, 0, 'a refused request reached the upstream');
});

test('a legal chunk extension is accepted and the chunked body forwarded', async () => {
    suite.up.reset();
    const gw = await gateway();
    const half = Math.floor(body.length / 2);
    const framed = `${half.toString(16)};ext=1\r\n${body.slice(0, half)}\r\n` +
        `${(body.length - half).toString(16)};name="quoted value"\r\n${body.slice(half)}\r\n0\r\n\r\n`;
    const { text } = await exchange(gw.port, [post('Transfer-Encoding: chunked\r\nConnection: close\r\n', framed)]);
    const [r] = parseResponses(text);
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).object, 'chat.completion');
    assert.equal(suite.up.chats().length, 1);
});

test('pipelined requests are answered in order on one connection', async () => {
    const gw = await gateway();
    const get = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
    const chat = post(`Content-Length: ${body.length}\r\n`);
    const { text } = await exchange(gw.port, [get + chat + 'GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    const rs = parseResponses(text);
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
    assert.equal(JSON.parse(rs[0].body).status, 'ok');
    assert.equal(JSON.parse(rs[1].body).object, 'chat.completion');
    assert.equal(JSON.parse(rs[2].body).object, 'list');
    assert.ok(rs.every((r) => /GMT$/.test(r.headers.date || '')), 'every answer has a Date');
});

test('HTTP/1.0: closes by default, keeps alive when asked; HEAD has no body', async () => {
    const gw = await gateway();
    let { text, closed } = await exchange(gw.port, ['GET /health HTTP/1.0\r\n\r\n']);
    let [r] = parseResponses(text);
    assert.equal(r.minor, 0);
    assert.equal(r.status, 200);
    assert.ok(closed);
    ({ text, closed } = await exchange(gw.port,
        ['GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'],
        { until: (t) => parseResponses(t).length === 1 && t.includes('"status"') , timeoutMs: 5000 }));
    [r] = parseResponses(text);
    assert.equal(r.headers.connection, 'keep-alive');
    ({ text } = await exchange(gw.port, ['HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']));
    assert.match(text, /^HTTP\/1\.1 200/);
    const headEnd = text.indexOf('\r\n\r\n');
    assert.ok(Number(/content-length: (\d+)/i.exec(text)[1]) > 0, 'HEAD carries the length');
    assert.equal(text.length, headEnd + 4, 'HEAD carries no body');
});

test('Expect: 100-continue gets 100 before the body is sent', async () => {
    const gw = await gateway();
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    const sock = net.connect(gw.port, '127.0.0.1');
    const got = [];
    await new Promise((resolve) => sock.on('connect', resolve));
    sock.write(head);
    await new Promise((resolve) => sock.once('data', (d) => {
        got.push(d);
        resolve();
    }));
    assert.match(Buffer.concat(got).toString(), /^HTTP\/1\.1 100 Continue\r\n\r\n/);
    sock.write(body);
    await new Promise((resolve) => {
        sock.on('data', (d) => got.push(d));
        sock.on('end', resolve);
    });
    sock.destroy();
    const rs = parseResponses(Buffer.concat(got).toString());
    assert.deepEqual(rs.map((r) => r.status), [100, 200]);
});

test('a half-closed client still gets its answer', async () => {
    const gw = await gateway();
    const { text } = await exchange(gw.port, [post(`Content-Length: ${body.length}\r\n`)], { end: true });
    const [r] = parseResponses(text);
    assert.equal(r.status, 200, text.slice(0, 200));
    assert.equal(JSON.parse(r.body).object, 'chat.completion');
});

test('slowloris: a head that trickles in is cut off at gateway.header_timeout with 408', async () => {
    const gw = await gateway({ gateway: { header_timeout: '1s' } });
    const bytes = 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: '.split('').concat(Array(200).fill('a'));
    const { text, closed } = await exchange(gw.port, bytes, { gapMs: 50, timeoutMs: 15000 });
    const [r] = parseResponses(text);
    assertOpenAIError(r, 408, 'slow head');
    assert.ok(closed);
});

test('idle keep-alive connections close after gateway.keepalive_timeout', async () => {
    const gw = await gateway({ gateway: { keepalive_timeout: '500ms' } });
    const { text, closed } = await exchange(gw.port, ['GET /health HTTP/1.1\r\nHost: x\r\n\r\n'],
        { timeoutMs: 15000 });
    assert.equal(parseResponses(text)[0].status, 200);
    assert.ok(closed, 'the idle connection was closed by the gateway');
});

test('past gateway.max_connections new connections get a JSON 503; open ones keep working', async () => {
    const gw = await gateway({ gateway: { max_connections: 4 }, args: ['--workers', '1'] });
    const held = [];
    for (let i = 0; i < 4; i++) {
        const s = net.connect(gw.port, '127.0.0.1');
        await new Promise((resolve) => s.on('connect', resolve));
        held.push(s);
    }
    await sleep(100);
    const over = await exchange(gw.port, ['GET /health HTTP/1.1\r\nHost: x\r\n\r\n']);
    const [r] = parseResponses(over.text);
    const e = assertOpenAIError(r, 503, 'over the cap');
    assert.equal(e.code, 'too_many_connections');
    // An open connection is still served; readiness says the gateway is full.
    const s = held[0];
    const got = [];
    s.on('data', (d) => got.push(d));
    s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await new Promise((resolve) => s.on('end', resolve));
    const [health, models] = parseResponses(Buffer.concat(got).toString());
    assert.equal(health.status, 503);
    const h = JSON.parse(health.body);
    assert.equal(h.status, 'degraded');
    assert.ok(h.reasons.some((x) => /connection cap \(4 of gateway.max_connections 4\)/.test(x)),
        health.body);
    assert.equal(models.status, 200);
    for (const h of held) {
        h.destroy();
    }
});

test('a client that aborts a stream mid-way is recorded as 499 and the upstream call ends', async () => {
    suite.up.reset();
    suite.up.behave({ chunkDelayMs: 150, chunks: Array.from({ length: 40 }, (_, i) => ` w${i}`) });
    const gw = await gateway();
    const payload = JSON.stringify(chatBody('Tell me a long story.', { stream: true }));
    await exchange(gw.port, [post(`Content-Length: ${payload.length}\r\n`, payload)],
        { until: (t) => t.includes('chat.completion.chunk') });
    await gw.waitForLog(/status=499/, 20000);
    suite.up.behave({});
});

test('a slow reader gets the whole stream: the relay waits instead of buffering without bound', async () => {
    suite.up.reset();
    const big = Array.from({ length: 400 }, (_, i) => ` ${'x'.repeat(400)}${i}`);
    suite.up.behave({ chunks: big });
    const gw = await gateway();
    const payload = JSON.stringify(chatBody('Long.', { stream: true }));
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((resolve) => sock.on('connect', resolve));
    sock.write(post(`Content-Length: ${payload.length}\r\nConnection: close\r\n`, payload));
    sock.pause();
    await sleep(1500); // the gateway meets a full socket and must hold the upstream
    const got = [];
    sock.on('data', (d) => got.push(d));
    sock.resume();
    await new Promise((resolve) => sock.on('end', resolve));
    const [r] = parseResponses(Buffer.concat(got).toString());
    assert.equal(r.status, 200);
    const text = r.body.split('\n').filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6))).map((c) => c.choices?.[0]?.delta?.content || '').join('');
    assert.equal(text, big.join(''));
    assert.match(r.body, /data: \[DONE\]/);
    suite.up.behave({});
});
