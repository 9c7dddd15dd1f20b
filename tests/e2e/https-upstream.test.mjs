// tests/e2e/https-upstream.test.mjs - an HTTPS upstream: trust through configuration only
// SPDX-License-Identifier: Apache-2.0
//
// The test makes its own CAs and certificates with the openssl CLI, runs the OpenAI stand-in
// over HTTPS with them, and points the gateway at https://localhost:<port>/v1. kt trusts the
// test CA only when told: a target's ca_file, or SSL_CERT_FILE as OpenSSL reads it. A
// certificate for another host name, or one from a CA nobody told kt about, ends in a 502
// that says why.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import {
    startUpstream, startGateway, client, rawRequest, chatBody, usageFor, makeTempDir,
    DEFAULT_REPLY, TEST_SECRET,
} from './lib/index.mjs';

let dir;
let good;       /* certificate for localhost from the trusted test CA */
let otherName;  /* certificate for another host name from the trusted test CA */
let otherCa;    /* certificate for localhost from a CA kt is never told about */
const gateways = [];

function openssl(...args) {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA: <name>.key and <name>.pem. */
function makeCa(name) {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2',
        '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

/** A server certificate for `dnsName` signed by `ca`: returns {key, cert} PEM text. */
function makeLeaf(name, ca, dnsName) {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${dnsName}`);
    writeFileSync(path.join(dir, `${name}.ext`),
        `subjectAltName=DNS:${dnsName}\nextendedKeyUsage=serverAuth\n` +
        'basicConstraints=CA:FALSE\n');
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
        '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
    return {
        key: readFileSync(path.join(dir, `${name}.key`)),
        cert: readFileSync(path.join(dir, `${name}.pem`)),
    };
}

before(async () => {
    dir = makeTempDir('kt-e2e-tls-');
    makeCa('test-ca');
    makeCa('stranger-ca');
    const tls = { urlHost: 'localhost' };
    good = await startUpstream({ ...tls, tls: makeLeaf('good', 'test-ca', 'localhost') });
    otherName = await startUpstream({ ...tls,
        tls: makeLeaf('other-name', 'test-ca', 'other.example') });
    otherCa = await startUpstream({ ...tls, tls: makeLeaf('other-ca', 'stranger-ca', 'localhost') });
});

after(async () => {
    for (const g of gateways) {
        await g.stop();
    }
    for (const u of [good, otherName, otherCa]) {
        await u?.close();
    }
});

/** A gateway on `up` with the given CA file (or none); SSL_CERT_FILE only when given. One
 * worker, so one keep-alive pool: connection counts are the pool's. */
async function gatewayFor(up, { caFile, certFile } = {}) {
    const g = await startGateway({
        upstream: up,
        args: ['--workers', '1'],
        targetExtra: caFile ? { ca_file: JSON.stringify(caFile) } : {},
        env: { SSL_CERT_FILE: certFile, SSL_CERT_DIR: undefined },
    });
    gateways.push(g);
    return g;
}

async function plainAndStreamed(gw, up) {
    const oa = client(gw);
    const messages = [{ role: 'user', content: 'How did run 7 do over TLS?' }];
    const r = await oa.chat.completions.create({ model: 'gpt-4o', messages });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, DEFAULT_REPLY);
    assert.deepEqual(r.usage, usageFor(messages, DEFAULT_REPLY));
    const seen = up.chats().at(-1);
    assert.equal(seen.headers.authorization, `Bearer ${TEST_SECRET}`);
    assert.equal(seen.headers.host, `localhost:${up.port}`);

    const s = await oa.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    let text = '';
    for await (const c of s) {
        text += (c.choices[0] && c.choices[0].delta.content) || '';
    }
    assert.equal(text, DEFAULT_REPLY);
}

async function expect502(gw, pattern) {
    const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: chatBody() });
    assert.equal(r.status, 502, r.body);
    assert.equal(r.json.error.code, 'upstream_error');
    assert.match(r.json.error.message, pattern);
}

test('https upstream trusted through ca_file: plain and streamed completions', async () => {
    const gw = await gatewayFor(good, { caFile: path.join(dir, 'test-ca.pem') });
    await plainAndStreamed(gw, good);
});

test('https upstream trusted through SSL_CERT_FILE: plain and streamed completions', async () => {
    const gw = await gatewayFor(good, { certFile: path.join(dir, 'test-ca.pem') });
    await plainAndStreamed(gw, good);
});

test('rate-limit and retry headers of the upstream reach the client', async () => {
    const gw = await gatewayFor(good, { caFile: path.join(dir, 'test-ca.pem') });
    good.enqueue({ status: 429, headers: { 'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '1s', 'retry-after-ms': '900', 'x-should-retry': 'true' },
    error: { message: 'Rate limit reached', type: 'requests', param: null,
        code: 'rate_limit_exceeded' } });
    const r = await rawRequest(gw, { method: 'POST', path: '/v1/chat/completions',
        body: chatBody() });
    assert.equal(r.status, 429, r.body);
    assert.equal(r.json.error.code, 'rate_limit_exceeded');
    assert.equal(r.headers['x-ratelimit-remaining-requests'], '0');
    assert.equal(r.headers['x-ratelimit-reset-requests'], '1s');
    assert.equal(r.headers['retry-after-ms'], '900');
    assert.equal(r.headers['x-should-retry'], 'true');
    assert.equal(r.headers['openai-version'], '2020-10-01');
});

test('https keep-alive: one TLS connection for several requests, and sessions resume', async () => {
    const gw = await gatewayFor(good, { caFile: path.join(dir, 'test-ca.pem') });
    const oa = client(gw);
    const messages = [{ role: 'user', content: 'Keep the connection.' }];
    await oa.chat.completions.create({ model: 'gpt-4o', messages });
    const conns = good.connections;
    for (let i = 0; i < 4; i++) {
        await oa.chat.completions.create({ model: 'gpt-4o', messages });
    }
    assert.equal(good.connections, conns, 'sequential requests opened new TLS connections');
    /* The upstream closes after each answer: the next requests need new connections, and
     * their handshakes resume sessions kt kept from the first one. */
    good.behave({ headers: { connection: 'close' } });
    const opened = good.connections;
    const resumed = good.resumed;
    for (let i = 0; i < 3; i++) {
        await oa.chat.completions.create({ model: 'gpt-4o', messages });
    }
    good.reset();
    assert.equal(good.connections, opened + 2, 'answers with Connection: close were reused');
    assert.equal(good.resumed, resumed + 2, 'new TLS connections did not resume the session');
});

test('a certificate for another host name -> 502 naming the host name problem', async () => {
    const before = otherName.chats().length;
    const gw = await gatewayFor(otherName, { caFile: path.join(dir, 'test-ca.pem') });
    await expect502(gw, /TLS certificate verify failed: hostname mismatch/);
    const viaEnv = await gatewayFor(otherName, { certFile: path.join(dir, 'test-ca.pem') });
    await expect502(viaEnv, /TLS certificate verify failed: hostname mismatch/);
    assert.equal(otherName.chats().length, before, 'the request reached an unverified upstream');
});

test('a CA kt was not told to trust -> 502 naming the verify failure', async () => {
    const gw = await gatewayFor(otherCa, { caFile: path.join(dir, 'test-ca.pem') });
    await expect502(gw, /TLS certificate verify failed: unable to get local issuer certificate/);
    const viaEnv = await gatewayFor(otherCa, { certFile: path.join(dir, 'test-ca.pem') });
    await expect502(viaEnv, /TLS certificate verify failed/);
    /* Without any setting the system store does not know the test CA either. */
    const system = await gatewayFor(good, {});
    await expect502(system, /TLS certificate verify failed/);
    assert.equal(otherCa.chats().length, 0, 'the request reached an unverified upstream');
});
