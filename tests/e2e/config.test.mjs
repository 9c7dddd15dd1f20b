// tests/e2e/config.test.mjs - config errors: exit code 2 and file:line:col on stderr
// SPDX-License-Identifier: Apache-2.0

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { pageConfig, runKt, testEnv, makeTempDir, TEST_SECRET } from './lib/index.mjs';

function brokenConfigs() {
    const dir = makeTempDir('kt-e2e-cfg-');
    const good = pageConfig({ baseUrl: 'http://127.0.0.1:9/v1' });
    const cases = {
        /* unclosed flow sequence: a YAML syntax error */
        'syntax.yaml': good.replace('chain: [prompt-injection, pii-detector, audit-logger]',
            'chain: [prompt-injection, pii-detector'),
        /* a value of the wrong type */
        'threshold.yaml': good.replace('threshold: 0.8', 'threshold: very-high'),
        /* a key nobody knows */
        'unknown-key.yaml': good.replace('  retention_days: 365', '  retention_days: 365\n' +
            '    retention_dayz: 30'),
        /* a chain entry that names no policy */
        'unknown-policy.yaml': good.replace('chain: [prompt-injection,',
            'chain: [no-such-policy, prompt-injection,'),
    };
    const files = {};
    for (const [name, text] of Object.entries(cases)) {
        assert.notEqual(text, good, `${name} did not change the config`);
        files[name] = path.join(dir, name);
        writeFileSync(files[name], text);
    }
    files['good.yaml'] = path.join(dir, 'good.yaml');
    writeFileSync(files['good.yaml'], good);
    return files;
}

test('kt policy check: 0 on the page config, 2 with file:line:col on broken ones', async () => {
    const files = brokenConfigs();
    const env = testEnv({ OPENAI_API_KEY: TEST_SECRET });
    const ok = await runKt(['policy', 'check', files['good.yaml']], { env });
    assert.equal(ok.code, 0, ok.stderr);
    for (const [name, file] of Object.entries(files)) {
        if (name === 'good.yaml') {
            continue;
        }
        const r = await runKt(['policy', 'check', file], { env });
        assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
        const re = new RegExp(`${escapeRe(file)}:\\d+:\\d+: \\S`);
        assert.match(r.stderr, re, `${name}: no file:line:col in\n${r.stderr}`);
    }
});

test('kt policy check: creates nothing in the state dir', async () => {
    const dir = makeTempDir('kt-e2e-cfg-');
    const configs = {
        'page.yaml': pageConfig({ baseUrl: 'http://127.0.0.1:9/v1' }),
        'cost.yaml': pageConfig({ baseUrl: 'http://127.0.0.1:9/v1',
            chain: ['prompt-injection', 'pii-detector', 'audit-logger', 'cost-tracker'] }),
    };
    for (const [name, text] of Object.entries(configs)) {
        const file = path.join(dir, name);
        writeFileSync(file, text);
        for (const stateDir of [makeTempDir('kt-e2e-state-'), path.join(dir, `absent-${name}`)]) {
            const env = testEnv({ OPENAI_API_KEY: TEST_SECRET, KT_STATE_DIR: stateDir });
            const r = await runKt(['policy', 'check', file], { env });
            assert.equal(r.code, 0, `${name}: exit ${r.code}\n${r.stderr}`);
            assert.match(r.stdout, new RegExp(`^${escapeRe(file)}: ok \\(pack `), r.stdout);
            const left = existsSync(stateDir) ? readdirSync(stateDir) : [];
            assert.deepEqual(left, [], `${name}: ${stateDir} holds ${left.join(', ')}`);
        }
    }
});

test('kt gateway run: broken config or missing secret exits 2 with file:line:col', async () => {
    const files = brokenConfigs();
    const stateDir = makeTempDir('kt-e2e-state-');
    const args = (f) => ['gateway', 'run', '--listen', '127.0.0.1:0', '--policy-config', f,
        '--state-dir', stateDir];
    for (const name of ['syntax.yaml', 'threshold.yaml']) {
        const r = await runKt(args(files[name]), { env: testEnv({ OPENAI_API_KEY: TEST_SECRET }) });
        assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
        assert.match(r.stderr, new RegExp(`${escapeRe(files[name])}:\\d+:\\d+: \\S`), r.stderr);
    }
    const r = await runKt(args(files['good.yaml']), { env: testEnv() });
    assert.equal(r.code, 2, `no OPENAI_API_KEY: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${escapeRe(files['good.yaml'])}:\\d+:\\d+: .*OPENAI_API_KEY`));
});

function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
