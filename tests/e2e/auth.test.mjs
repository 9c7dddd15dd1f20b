// tests/e2e/auth.test.mjs - kt auth login|status|logout against the W&B stand-in
// SPDX-License-Identifier: Apache-2.0
//
// The key goes in on stdin (or a key file, or a terminal without echo), is checked with the
// Viewer query (the stand-in answers 401 to a key it does not know, as W&B does) and lands in
// the netrc file with mode 0600, replacing that host's entry and keeping every other one. The
// netrc written is the one the rest of kt reads: `kt dashboards push` works from it alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { ktBin, makeTempDir, runKt, sanitizerReport, testEnv, trackChild } from './lib/index.mjs';
import { startStandin, withStandin } from './wandb-standin/server.mjs';

const KEY = `kt-${'a'.repeat(40)}`;
const KEY2 = `local-${'b'.repeat(40)}`;
const OTHERS = 'machine other.example.com\n  login bob\n  password other-secret\n'
    + '# a comment of mine\nmachine git.example.org login me password tok\n';

function env(home, extra = {}) {
    return testEnv({ HOME: home, NETRC: undefined, WANDB_API_KEY: undefined,
        WANDB_BASE_URL: undefined, ...extra });
}

async function kt(args, { home, input, extra } = {}) {
    const r = await runKt(args, { env: env(home, extra), input });
    assert.equal(sanitizerReport(r.stderr), null, r.stderr);
    for (const k of [KEY, KEY2]) {
        assert.ok(!r.stdout.includes(k) && !r.stderr.includes(k), 'the key is never printed');
    }
    return r;
}

function hostOf(url) {
    return new URL(url).host;
}

/** The netrc's entries as {machine: {login, password}} (whitespace-separated tokens). */
function entries(file) {
    const toks = readFileSync(file, 'utf8').replace(/#[^\n]*/g, '').split(/\s+/).filter(Boolean);
    const out = {};
    let cur = null;
    for (let i = 0; i < toks.length; i++) {
        if (toks[i] === 'machine') {
            cur = toks[++i];
            assert.ok(!(cur in out), `one entry for ${cur}`);
            out[cur] = {};
        } else if (['login', 'password'].includes(toks[i])) {
            out[cur][toks[i]] = toks[++i];
        }
    }
    return out;
}

test('login reads the key from stdin, checks it and writes netrc 0600', () => withStandin({ keys: [KEY] }, async (s) => {
    const home = makeTempDir('kt-auth-home-');
    const r = await kt(['auth', 'login', '--host', s.url], { home, input: `${KEY}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Logged in to http:\/\/127\.0\.0\.1:\d+ as alice \(default entity alice\)/);
    const file = path.join(home, '.netrc');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(entries(file), { [hostOf(s.url)]: { login: 'user', password: KEY } });
    const viewer = s.state.requests.filter((q) => q.op === 'Viewer');
    assert.equal(viewer.length, 1, 'the key was checked with the Viewer query');
    assert.ok(viewer[0].auth, 'as HTTP Basic auth');
    assert.deepEqual(s.state.rejected, []);

    // The rest of kt finds it there: dashboards push with no WANDB_API_KEY.
    const push = await kt(['dashboards', 'push', '--project', 'p', '--state-dir',
        makeTempDir('kt-auth-state-')], { home, extra: { WANDB_BASE_URL: s.url } });
    assert.equal(push.code, 0, push.stderr);
}));

test('relogin replaces this host\'s entry and keeps the others byte for byte', async () => {
    const s = await startStandin({ keys: [KEY, KEY2] });
    try {
        const home = makeTempDir('kt-auth-home-');
        const file = path.join(home, '.netrc');
        writeFileSync(file, `${OTHERS}machine ${hostOf(s.url)}\n  login user\n  password ${KEY}\n`,
            { mode: 0o644 });
        // Without --relogin a saved key W&B accepts is kept, and stdin is not read.
        let r = await kt(['auth', 'login', '--host', s.url], { home, input: `${KEY2}\n` });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^Already logged in to .* as alice/);
        assert.equal(entries(file)[hostOf(s.url)].password, KEY);

        r = await kt(['auth', 'login', '--relogin'], { home, input: `  ${KEY2}  \n`,
            extra: { WANDB_BASE_URL: s.url } });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /key replaced in /);
        const text = readFileSync(file, 'utf8');
        assert.ok(text.startsWith(OTHERS), 'other entries and comments kept as they were');
        assert.deepEqual(entries(file)[hostOf(s.url)], { login: 'user', password: KEY2 });
        assert.equal(Object.keys(entries(file)).length, 3);
        assert.equal(statSync(file).mode & 0o777, 0o600, 'a 0644 netrc becomes 0600');
    } finally {
        await s.close();
    }
});

test('a key W&B refuses is not saved: one line, exit 1', () => withStandin({ keys: [KEY] }, async (s) => {
    const home = makeTempDir('kt-auth-home-');
    const r = await kt(['auth', 'login', '--host', s.url], { home, input: `${KEY2}\n` });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^kt auth login: W&B at .* refused the key \(HTTP 401/);
    assert.ok(!existsSync(path.join(home, '.netrc')), 'nothing written');

    // Malformed input and nothing at all are usage errors (2), checked before W&B.
    const before = s.state.requests.length;
    const bad = await kt(['auth', 'login', '--host', s.url], { home, input: 'not a key\n' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^kt auth login: that is not a W&B API key/);
    const none = await kt(['auth', 'login', '--host', s.url], { home, input: '' });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^kt auth login: no API key given/);
    assert.equal(s.state.requests.length, before);
    const host = await kt(['auth', 'login', '--host', 'api.wandb.ai'], { home, input: '' });
    assert.equal(host.code, 2);
    assert.match(host.stderr, /--host wants an http:\/\/ or https:\/\/ URL/);
}));

test('--key-file and $NETRC', () => withStandin({ keys: [KEY] }, async (s) => {
    const home = makeTempDir('kt-auth-home-');
    const netrc = path.join(makeTempDir('kt-auth-netrc-'), 'my-netrc');
    const keyFile = path.join(home, 'key.txt');
    writeFileSync(keyFile, `${KEY}\n`, { mode: 0o600 });
    const r = await kt(['auth', 'login', '--host', s.url, '--key-file', keyFile],
        { home, extra: { NETRC: netrc } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(entries(netrc)[hostOf(s.url)].password, KEY);
    assert.ok(!existsSync(path.join(home, '.netrc')));
    const missing = await kt(['auth', 'login', '--relogin', '--host', s.url, '--key-file',
        path.join(home, 'nope')], { home, extra: { NETRC: netrc } });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^kt auth login: cannot read .*nope/);
}));

test('status says whose key is used and where from; logout removes only this host',
    () => withStandin({ keys: [KEY] }, async (s) => {
        const home = makeTempDir('kt-auth-home-');
        const file = path.join(home, '.netrc');
        const extra = { WANDB_BASE_URL: s.url };
        let r = await kt(['auth', 'status'], { home, extra });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /^kt auth status: not logged in to .*run kt auth login/);

        writeFileSync(file, OTHERS, { mode: 0o600 });
        r = await kt(['auth', 'login'], { home, extra, input: `${KEY}\n` });
        assert.equal(r.code, 0, r.stderr);
        r = await kt(['auth', 'status'], { home, extra });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `Logged in to ${s.url} as alice (default entity alice); key from ${file}\n`);
        // The environment wins, as for the agent; a key W&B refuses is exit 1.
        r = await kt(['auth', 'status'], { home, extra: { ...extra, WANDB_API_KEY: KEY2 } });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /refused the key \(HTTP 401/);

        r = await kt(['auth', 'logout'], { home, extra });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readFileSync(file, 'utf8'), OTHERS);
        assert.equal(statSync(file).mode & 0o777, 0o600);
        r = await kt(['auth', 'logout'], { home, extra });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /^kt auth logout: not logged in/);
        r = await kt(['auth', 'status'], { home, extra });
        assert.equal(r.code, 1);
    }));

const haveScript = spawnSync('script', ['--version']).status === 0;

test('on a terminal the key is read without echo', { skip: !haveScript && 'no script(1)' },
    () => withStandin({ keys: [KEY] }, async (s) => {
        const home = makeTempDir('kt-auth-home-');
        // script(1) gives kt a pseudo-terminal; everything it shows comes back on stdout. A
        // login takes well under a second: past a minute it is stuck waiting, so kill it.
        const child = trackChild(spawn('script', ['-q', '-e', '-c',
            `${ktBin()} auth login --host ${s.url}`, '/dev/null'],
        { env: env(home), stdio: ['pipe', 'pipe', 'pipe'] }), { killAfterMs: 60000 });
        let shown = '';
        const exited = new Promise((resolve) => child.on('exit', resolve));
        await new Promise((resolve, reject) => {
            child.stdout.on('data', (d) => {
                shown += d;
                if (shown.includes('not shown): ')) {
                    resolve();
                }
            });
            child.on('exit', () => reject(new Error(`kt exited before asking: ${shown}`)));
        });
        child.stdin.write(`${KEY}\r`);
        const code = await exited;
        assert.equal(code, 0, shown);
        assert.match(shown, /Logged in to .* as alice/);
        assert.ok(!shown.includes(KEY), 'the terminal never showed the key');
        assert.equal(entries(path.join(home, '.netrc'))[hostOf(s.url)].password, KEY);
    }));
