// tests/e2e/cli.test.mjs - every kt command reads its arguments the same way
// SPDX-License-Identifier: Apache-2.0
//
// The commands come from `kt help` itself, so a new command is covered the day it is added:
// `--help` prints its usage on stdout and exits 0; an unknown option prints one line and the
// usage on stderr and exits 2; `--x=v` means the same as `--x v`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { client, ktBin, pageConfig, runKt, makeTempDir, startGateway, startUpstream,
    TEST_SECRET } from './lib/index.mjs';

async function commands() {
    const r = await runKt(['help']);
    assert.equal(r.code, 0, r.stderr);
    const cmds = [];
    for (const line of r.stdout.split('\n')) {
        const m = /^ {2}kt ([a-z-]+) ([a-z-]+)\b/.exec(line);
        if (m && m[1] !== '--version' && m[1] !== 'help') {
            cmds.push([m[1], m[2]]);
        }
    }
    return cmds;
}

test('kt help lists the commands, and each one answers --help on stdout with exit 0', async () => {
    const cmds = await commands();
    assert.ok(cmds.length >= 11, `kt help listed only ${cmds.length} commands`);
    for (const cmd of cmds) {
        for (const flag of ['--help', '-h']) {
            const r = await runKt([...cmd, flag]);
            assert.equal(r.code, 0, `kt ${cmd.join(' ')} ${flag}: exit ${r.code}: ${r.stderr}`);
            assert.match(r.stdout, new RegExp(`^usage: kt ${cmd.join(' ')}\\b`),
                `kt ${cmd.join(' ')} ${flag} printed: ${r.stdout}`);
        }
    }
});

test('an unknown option exits 2 with one line naming it and the usage, on every command',
    async () => {
        for (const cmd of await commands()) {
            const r = await runKt([...cmd, '--no-such-option=1']);
            assert.equal(r.code, 2, `kt ${cmd.join(' ')}: exit ${r.code}`);
            assert.equal(r.stdout, '', `kt ${cmd.join(' ')} wrote to stdout: ${r.stdout}`);
            const lines = r.stderr.split('\n');
            assert.equal(lines[0], `kt ${cmd.join(' ')}: unknown option '--no-such-option'`);
            assert.match(lines[1], new RegExp(`^usage: kt ${cmd.join(' ')}\\b`));
        }
    });

test('a group alone with --help lists its commands; an unknown group exits 2', async () => {
    const r = await runKt(['events', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kt events list/);
    assert.match(r.stdout, /kt events verify/);
    const bad = await runKt(['no-such-group', 'run']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command 'no-such-group run'/);
});

test('--state-dir=DIR means --state-dir DIR for the commands that read the state dir',
    async () => {
        const up = await startUpstream();
        const gw = await startGateway({ upstream: up });
        try {
            const c = client(gw, { headers: { 'X-Wandb-Run-Id': 'cli-equals-run' } });
            await c.chat.completions.create({ model: 'gpt-4o',
                messages: [{ role: 'user', content: 'hello' }] });
        } finally {
            await gw.stop();
            await up.close();
        }
        // (tail follows the log until --max new records arrive: it is left out here.)
        for (const cmd of [['events', 'list', '--json'], ['events', 'verify', '--json'],
            ['events', 'list', '--json', '--run=cli-equals-run', '--decision=allowed']]) {
            const spaced = await runKt([...cmd, '--state-dir', gw.stateDir]);
            const joined = await runKt([...cmd, `--state-dir=${gw.stateDir}`]);
            assert.equal(spaced.code, 0, `${cmd.join(' ')}: ${spaced.stderr}`);
            assert.equal(joined.code, spaced.code);
            assert.equal(joined.stdout, spaced.stdout, `${cmd.join(' ')} differs with =`);
            if (cmd[1] === 'list') {
                assert.match(joined.stdout, /cli-equals-run/);
            }
        }
        const limited = await runKt(['events', 'list', '--json', '--limit=0',
            `--state-dir=${gw.stateDir}`]);
        assert.equal(limited.code, 0, limited.stderr);
        assert.equal(limited.stdout.trim(), '');

        // policy check: option=value before the positional FILE.
        const dir = makeTempDir('kt-e2e-cli-');
        const file = path.join(dir, 'policy-config.yaml');
        writeFileSync(file, pageConfig({ baseUrl: 'http://127.0.0.1:9/v1' }));
        const env = { ...process.env, OPENAI_API_KEY: TEST_SECRET };
        const pc = await runKt(['policy', 'check', `--state-dir=${gw.stateDir}`, file], { env });
        assert.equal(pc.code, 0, pc.stderr);
        assert.match(pc.stdout, /: ok \(pack /);
    });

test('a bad number is a usage error that names the option and the range', async () => {
    const r = await runKt(['events', 'list', '--limit=lots']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^kt events list: --limit wants a whole number from 0 to 1000000, got 'lots'/);
    const t = await runKt(['events', 'tail', '--lines=-1']);
    assert.equal(t.code, 2);
    assert.match(t.stderr, /^kt events tail: --lines wants a whole number from 0 to 1000000/);
    const w = await runKt(['gateway', 'run', '--listen=127.0.0.1:0', '--policy-config=x.yaml',
        '--workers=0']);
    assert.equal(w.code, 2);
    assert.match(w.stderr, /--workers wants a whole number from 1 to 256, got '0'/);
});

// The allocator is a build choice (mimalloc, or glibc's under the sanitizers): --version must
// say which one this binary has, and mimalloc only serves json-c, OpenSSL and libevent when the
// dynamic linker finds its malloc before libc's, i.e. it is needed ahead of libc.
test('kt --version names the malloc the binary links, and mimalloc is needed before libc',
    async () => {
        const r = await runKt(['--version']);
        assert.equal(r.code, 0, r.stderr);
        const m = /^kt \S+\nmalloc: (mimalloc \d+\.\d+\.\d+|glibc)\n$/.exec(r.stdout);
        assert.ok(m, `kt --version printed: ${JSON.stringify(r.stdout)}`);
        const dyn = spawnSync('readelf', ['-d', ktBin()], { encoding: 'utf8' });
        assert.equal(dyn.status, 0, dyn.stderr);
        const needed = [...dyn.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)]
            .map((x) => x[1]);
        const mi = needed.findIndex((lib) => lib.startsWith('libmimalloc.so'));
        const libc = needed.indexOf('libc.so.6');
        assert.ok(libc >= 0, `no libc among ${needed}`);
        if (m[1] === 'glibc') {
            assert.equal(mi, -1, `--version says glibc but kt needs ${needed[mi]}`);
        } else {
            assert.ok(mi >= 0 && mi < libc, `mimalloc must come before libc: ${needed}`);
        }
    });
