// tests/e2e/statedir.test.mjs - an unusable state dir is a usage error that names its cause
// SPDX-License-Identifier: Apache-2.0
//
// `kt gateway run` and `kt agent run` with a state dir they cannot write exit 2 (like any
// configuration or usage error) and say why: the path and strerror of the call that failed.
// A read-only file system is a tmpfs mounted read-only in a private mount namespace
// (unshare -m); without the privilege for that, those cases are skipped. A state dir below a
// regular file (ENOTDIR) needs no privilege.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import {
    ktBin, makeTempDir, testEnv, runKt, writeConfig, pageConfig, TEST_SECRET,
} from './lib/index.mjs';

const env = testEnv({ OPENAI_API_KEY: TEST_SECRET });

/* No upstream is needed: nothing gets as far as serving. */
const config = writeConfig(pageConfig({ baseUrl: 'http://127.0.0.1:9',
    chain: ['prompt-injection'] })).file;

/** Runs kt with `args` inside a mount namespace where `dir` is a read-only tmpfs holding
 * an existing `state/agent` directory. */
function runReadOnly(dir, args) {
    const script = 'mount -t tmpfs tmpfs "$1" && mkdir -p "$1/state/agent" && ' +
        'mount -o remount,ro "$1" && shift && exec "$@"';
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', dir, ktBin(), ...args],
        { env, encoding: 'utf8', timeout: 30000 });
    return { code: r.status, stderr: r.stderr || '', stdout: r.stdout || '' };
}

function canMountReadOnly() {
    const dir = makeTempDir('kt-e2e-ro-');
    const r = spawnSync('unshare', ['-m', 'sh', '-c',
        'mount -t tmpfs -o ro tmpfs "$1" && ! touch "$1/x" 2>/dev/null', 'sh', dir],
    { encoding: 'utf8', timeout: 30000 });
    return r.status === 0;
}

const skipRo = !canMountReadOnly() && 'cannot mount a read-only tmpfs here (unshare -m)';

test('gateway: a state dir on a read-only file system exits 2 and says EROFS', { skip: skipRo },
    () => {
        const dir = makeTempDir('kt-e2e-ro-');
        for (const state of [path.join(dir, 'state'), path.join(dir, 'missing')]) {
            const r = runReadOnly(dir, ['gateway', 'run', '--listen', '127.0.0.1:0',
                '--policy-config', config, '--state-dir', state]);
            assert.equal(r.code, 2, `${state}: ${r.stderr}`);
            assert.match(r.stderr, /Read-only file system/, r.stderr);
            assert.ok(r.stderr.includes(state), `the path is named: ${r.stderr}`);
        }
    });

test('agent: a state dir on a read-only file system exits 2 and says EROFS, not "another agent"',
    { skip: skipRo }, () => {
        const dir = makeTempDir('kt-e2e-ro-');
        for (const state of [path.join(dir, 'state'), path.join(dir, 'missing')]) {
            const r = runReadOnly(dir, ['agent', 'run', '--state-dir', state,
                '--exporters', 'none']);
            assert.equal(r.code, 2, `${state}: ${r.stderr}`);
            assert.match(r.stderr, /Read-only file system/, r.stderr);
            assert.doesNotMatch(r.stderr, /another agent/, r.stderr);
            assert.ok(r.stderr.includes(state), `the path is named: ${r.stderr}`);
        }
    });

test('gateway and agent: a state dir below a regular file exits 2 and says ENOTDIR', async () => {
    const dir = makeTempDir('kt-e2e-notdir-');
    const file = path.join(dir, 'plain-file');
    writeFileSync(file, 'not a directory\n');
    const state = path.join(file, 'state');
    const gw = await runKt(['gateway', 'run', '--listen', '127.0.0.1:0', '--policy-config',
        config, '--state-dir', state], { env });
    assert.equal(gw.code, 2, gw.stderr);
    assert.match(gw.stderr, /Not a directory/, gw.stderr);
    assert.ok(gw.stderr.includes(state), gw.stderr);
    const ag = await runKt(['agent', 'run', '--state-dir', state, '--exporters', 'none'], { env });
    assert.equal(ag.code, 2, ag.stderr);
    assert.match(ag.stderr, /Not a directory/, ag.stderr);
    /* The state dir itself a regular file: mkdir -p passes it (EEXIST); the check does not. */
    const gw2 = await runKt(['gateway', 'run', '--listen', '127.0.0.1:0', '--policy-config',
        config, '--state-dir', file], { env });
    assert.equal(gw2.code, 2, gw2.stderr);
    assert.match(gw2.stderr, /Not a directory/, gw2.stderr);
});

/* Without --state-dir both commands fall back to the default state dir; when that cannot be
 * named (here KT_STATE_DIR is longer than a path may be) they exit 2 with the same line,
 * cli_state_dir's. */
test('gateway and agent: no usable default state dir exits 2 and asks for --state-dir',
    async () => {
        const longEnv = testEnv({ OPENAI_API_KEY: TEST_SECRET, KT_STATE_DIR: 'x'.repeat(5000) });
        const gw = await runKt(['gateway', 'run', '--listen', '127.0.0.1:0', '--policy-config',
            config], { env: longEnv });
        assert.equal(gw.code, 2, gw.stderr);
        assert.match(gw.stderr, /^kt gateway run: no usable state dir; pass --state-dir$/m,
            gw.stderr);
        const ag = await runKt(['agent', 'run', '--exporters', 'none'], { env: longEnv });
        assert.equal(ag.code, 2, ag.stderr);
        assert.match(ag.stderr, /^kt agent run: no usable state dir; pass --state-dir$/m,
            ag.stderr);
    });
