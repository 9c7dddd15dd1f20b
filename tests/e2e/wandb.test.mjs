// tests/e2e/wandb.test.mjs - the W&B exporter against the W&B stand-in
// SPDX-License-Identifier: Apache-2.0
//
// The stand-in is first checked with the official @wandb/sdk npm client, then the real
// exporter code (ex_wandb ops through build/wandb_driver, and `kt wandb sync`) runs
// against it: totals per tagged run, restart/resume, a 60 s 503 outage, a 429 burst with
// Retry-After, a bad key, dashboards once per project, offline then sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ktBin, ktBinExists, makeTempDir, testEnv, sanitizerReport, REPO_ROOT } from './lib/proc.mjs';
import { trackChild } from './lib/live.mjs';
import { startStandin, withStandin } from './wandb-standin/server.mjs';

const E2E_DIR = path.join(REPO_ROOT, 'tests', 'e2e');
const KEY = `kt-${'a'.repeat(40)}`;
const driverBin = path.join(path.dirname(ktBin()), 'wandb_driver');
const haveDriver = existsSync(driverBin);

function run(bin, args, env, timeoutMs = 180000, cwd = REPO_ROOT) {
    return new Promise((resolve, reject) => {
        // Bounded by timeoutMs below; tracked so that one still running when its test fails
        // (e.g. beside another run that rejected) is stopped after the file's tests.
        const child = trackChild(spawn(bin, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { err += d; });
        const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${bin} timed out\n${err}`)); },
            timeoutMs);
        /* It never started: the test fails with why, and no timer holds the file open. */
        child.on('error', (e) => { clearTimeout(t); reject(e); });
        child.on('exit', (code) => {
            clearTimeout(t);
            const san = sanitizerReport(err);
            if (san) reject(new Error(`sanitizer: ${san}\n${err.slice(-3000)}`));
            else resolve({ code, stdout: out, stderr: err });
        });
    });
}

// A stand-in that knows KEY and a fresh state dir, for one driver test.
function withDriverStandin(fn) {
    return withStandin({ keys: [KEY] }, (s) => fn(s, makeTempDir('kt-wandb-')));
}

function wbEnv(s, extra = {}) {
    const home = makeTempDir('kt-wandb-home-');
    return testEnv({ WANDB_BASE_URL: s.url, WANDB_API_KEY: KEY, HOME: home, NETRC: undefined,
        WANDB_ENTITY: undefined, WANDB_PROJECT: 'gov', ...extra });
}

function driver(s, state, args, env) {
    return run(driverBin, ['--state', state, '--config', 'upload_interval: 0s\n', ...args],
        env || wbEnv(s));
}

function sync(dir, env) {
    return ktBinExists() ? run(ktBin(), ['wandb', 'sync', dir, '--attempts', '3'], env)
        : run(driverBin, ['sync', dir, '--attempts', '3'], env);
}

const rows = (r) => r.history.map((l) => JSON.parse(l));
const strip = (row) => {
    const { _runtime, _timestamp, ...rest } = row;
    return rest;
};

function checkRun(run, n, { complete = false } = {}) {
    assert.equal(run.history.length, n, `${run.name}: ${n} history rows`);
    const h = rows(run);
    h.forEach((r, i) => {
        assert.equal(r._step, i);
        assert.equal(r['governance/requests'], 10 * (i + 1));
        assert.equal(r['governance/blocked_by/injection'], 2 * (i + 1));
        assert.equal(r['governance/pii/EMAIL_ADDRESS'], i + 1);
        assert.equal(r['governance/tokens_total'], 140 * (i + 1));
        assert.deepEqual(r['governance/latency_seconds'],
            { _type: 'histogram', values: [4, 3, 2, 1], bins: [0, 0.05, 0.1, 0.15, 0.2] });
        assert.ok(r._timestamp > 1.6e9 && r._runtime >= 0);
    });
    const sum = JSON.parse(run.summary);
    assert.equal(sum['governance/requests'], 10 * n);
    assert.equal(sum._step, n - 1);
    assert.equal(run.complete, complete);
    assert.equal(run.overwrites || 0, 0, 'no line was overwritten with different content');
}

test('the stand-in talks to the official @wandb/sdk client', () => withStandin({ keys: [KEY] }, async (s) => {
    const script = `
        import { wandb } from '@wandb/sdk';
        const run = await wandb.init({ project: 'sdkcheck', id: 'sdkrun01' });
        for (let i = 0; i < 3; i++) run.log({ loss: 1 / (i + 1), acc: i / 10 });
        await run.finish(0);`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script],
        wbEnv(s, { WANDB_API_KEY: 'a'.repeat(40) }), 60000, E2E_DIR);
    // Wrong key for this stand-in: the SDK must fail to start.
    assert.notEqual(r.code, 0, 'a key the stand-in does not know is refused');
    const s2 = await startStandin({ keys: ['a'.repeat(40)] });
    try {
        const ok = await run(process.execPath, ['--input-type=module', '-e', script],
            wbEnv(s2, { WANDB_API_KEY: 'a'.repeat(40) }), 60000, E2E_DIR);
        assert.equal(ok.code, 0, ok.stderr);
        const runSt = s2.state.runs['alice/sdkcheck/sdkrun01'];
        assert.ok(runSt, 'the SDK created its run');
        assert.equal(runSt.history.length, 3);
        assert.deepEqual(rows(runSt).map((x) => x._step), [0, 1, 2]);
        assert.equal(JSON.parse(runSt.summary).acc, 0.2);
        assert.equal(runSt.complete, true);
        assert.deepEqual(s2.state.rejected, []);
        const ops = s2.state.requests.map((q) => q.op || q.path);
        assert.deepEqual(ops.slice(0, 2), ['Viewer', 'UpsertBucket']);
    } finally {
        await s2.close();
    }
}));

test('the stand-in rejects what W&B would', async () => {
    const s = await startStandin({ keys: [KEY] });
    const auth = { authorization: `Basic ${Buffer.from(`api:${KEY}`).toString('base64')}`,
        'content-type': 'application/json' };
    // A document that declares and uses exactly the variables sent (the stand-in checks).
    const doc = (op, variables) => {
        const names = Object.keys(variables);
        return names.length ? `mutation ${op}(${names.map((n) => `$${n}: String`).join(', ')}) {`
            + ` x(${names.map((n) => `${n}: $${n}`).join(', ')}) }` : `mutation ${op} { x }`;
    };
    const gql = (op, variables, headers = auth) => fetch(`${s.url}/graphql`, { method: 'POST',
        headers, body: JSON.stringify({ query: doc(op, variables), operationName: op,
            variables }) });
    const fs = (body) => fetch(`${s.url}/files/alice/p/r1/file_stream`, { method: 'POST',
        headers: auth, body: JSON.stringify(body) });
    const hist = (offset, lines) => fs({ files: { 'wandb-history.jsonl': { offset,
        content: lines.map((l) => JSON.stringify(l)) } } });
    try {
        assert.equal((await gql('Viewer', {}, { 'content-type': 'application/json' })).status, 401);
        assert.equal((await gql('Viewer', {}, { ...auth, authorization: `Basic ${Buffer.from(
            'user:' + KEY).toString('base64')}` })).status, 401);
        assert.equal((await gql('UpsertBucket', { name: 'r1', project: 'p',
            config: JSON.stringify({ lr: 0.1 }) })).status, 400);
        assert.equal((await gql('UpsertBucket', { name: 'r1', project: 'p',
            config: JSON.stringify({ lr: { value: 0.1 } }) })).status, 200);
        assert.equal((await hist(1, [{ a: 1, _step: 0 }])).status, 400, 'offset gap');
        assert.equal((await hist(0, [{ a: 1, _step: 3 }, { a: 1, _step: 2 }])).status, 400,
            '_step going back');
        assert.equal((await hist(0, [{ h: { _type: 'histogram', values: [1, 2], bins: [0, 1] },
            _step: 0 }])).status, 400, 'bins must be values + 1');
        assert.equal((await hist(0, [{ h: { _type: 'histogram', values: [1], bins: [1, 0] },
            _step: 0 }])).status, 400, 'bins must increase');
        assert.equal((await fs({ files: { 'notes.txt': { offset: 0, content: ['x'] } } })).status,
            400, 'unknown file');
        assert.equal((await hist(0, [{ a: 1, _step: 0 }])).status, 200);
        assert.equal((await hist(1, [{ a: 2, _step: 1 }])).status, 200);
        assert.equal(s.state.runs['alice/p/r1'].history.length, 2);
        const r404 = await fetch(`${s.url}/files/alice/p/nope/file_stream`, { method: 'POST',
            headers: auth, body: '{}' });
        assert.equal(r404.status, 404);
    } finally {
        await s.close();
    }
});

test('runs per tagged run id with the right totals, dashboards once per project', { skip: !haveDriver },
    () => withDriverStandin(async (s, state) => {
        let r = await driver(s, state, ['--runs', '2', '--batches', '3']);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(s.state.rejected, []);
        for (const i of [0, 1]) {
            const run = s.state.runs[`alice/gov/exp${i}-gov`];
            assert.ok(run, `companion run exp${i}-gov`);
            checkRun(run, 3);
            assert.equal(run.displayName, `governance · exp${i}`);
            assert.equal(run.groupName, `exp${i}`);
            assert.equal(run.jobType, 'governance');
            const cfg = JSON.parse(run.config);
            assert.deepEqual(cfg.experiment_run_id, { value: `exp${i}` });
            assert.deepEqual(cfg.policy_chain.value, ['injection', 'pii', 'audit', 'rbac', 'cost']);
            assert.ok(cfg._wandb.value.t);
        }
        assert.equal(s.state.viewInserts, 2, 'one workspace and one report');
        // Restart (a new process, same state dir): rows continue, views are updated.
        r = await driver(s, state, ['--runs', '2', '--batches', '2', '--start', '3', '--final']);
        assert.equal(r.code, 0, r.stderr);
        for (const i of [0, 1]) checkRun(s.state.runs[`alice/gov/exp${i}-gov`], 5, { complete: true });
        assert.equal(s.state.viewInserts, 2, 'no duplicate views after a restart');
        assert.equal(s.state.viewUpdates, 2);
        const views = Object.values(s.state.views['alice/gov']);
        assert.deepEqual(views.map((v) => v.type).sort(), ['project-view', 'runs']);
        const ws = JSON.parse(views.find((v) => v.type === 'project-view').spec);
        assert.equal(ws.section.panelBankConfig.sections[0].name, 'Governance');
        // No request ever carried the key anywhere but the Authorization header.
        for (const q of s.state.requests) {
            assert.ok(!JSON.stringify(q).includes(KEY));
            assert.ok(q.auth);
        }
        assert.ok(!r.stderr.includes(KEY), 'the key never reaches the log');
    }));

test('a crash after a post resumes from W&B\'s line count without duplicates', { skip: !haveDriver },
    () => withDriverStandin(async (s, state) => {
        let r = await driver(s, state, ['--batches', '3']);
        assert.equal(r.code, 0, r.stderr);
        // Forget what was acknowledged, as if the process died before saving it.
        // (entity "_": the key's default entity, resolved through Viewer.)
        rmSync(path.join(state, 'wandb', '_', 'gov', 'exp0-gov', 'sync.json'));
        r = await driver(s, state, ['--batches', '2', '--start', '3']);
        assert.equal(r.code, 0, r.stderr);
        const run = s.state.runs['alice/gov/exp0-gov'];
        checkRun(run, 5);
        assert.ok(s.state.requests.some((q) => q.op === 'RunResumeStatus'));
        assert.deepEqual(s.state.rejected, []);
    }));

test('a burst of 429 with Retry-After loses nothing and waits as told', { skip: !haveDriver },
    () => withDriverStandin(async (s, state) => {
        s.fault({ status: 429, count: 4, retryAfter: 1, match: 'file_stream' });
        const r = await driver(s, state, ['--batches', '3', '--gap-ms', '200']);
        assert.equal(r.code, 0, r.stderr);
        checkRun(s.state.runs['alice/gov/exp0-gov'], 3);
        const fsReqs = s.state.requests.filter((q) => q.path.endsWith('/file_stream'));
        const limited = fsReqs.filter((q) => q.status === 429);
        assert.equal(limited.length, 4);
        // Each retry came no sooner than Retry-After allowed, with the same offset.
        for (let i = 1; i < fsReqs.length; i++) {
            if (fsReqs[i - 1].status === 429) {
                assert.ok(fsReqs[i].t - fsReqs[i - 1].t >= 950,
                    `request ${i} ${fsReqs[i].t - fsReqs[i - 1].t} ms after a 429`);
            }
        }
    }));

test('after a 500 the next tries back off exponentially (2 s, then 4 s, plus jitter)',
    { skip: !haveDriver }, () => withDriverStandin(async (s, state) => {
        s.fault({ status: 500, count: 2, match: 'file_stream' });
        const r = await driver(s, state, ['--batches', '2', '--gap-ms', '200']);
        assert.equal(r.code, 0, r.stderr);
        checkRun(s.state.runs['alice/gov/exp0-gov'], 2);
        const fsReqs = s.state.requests.filter((q) => q.path.endsWith('/file_stream'));
        assert.deepEqual(fsReqs.slice(0, 3).map((q) => q.status), [500, 500, undefined]);
        // Lower bounds only: a loaded machine can make the gaps longer, never shorter.
        for (let i = 1; i < 3; i++) {
            const gap = fsReqs[i].t - fsReqs[i - 1].t;
            const min = 2000 * 2 ** (i - 1);
            assert.ok(gap >= min - 50, `try ${i + 1} came ${gap} ms after a 500, not >= ${min}`);
        }
    }));

test('a dropped connection is retried with the very same body', { skip: !haveDriver },
    () => withDriverStandin(async (s, state) => {
        // Twice: libcurl itself resends once on a fresh connection when a reused one
        // dies; the second drop reaches the exporter.
        s.fault({ drop: true, count: 2, match: 'file_stream' });
        // Payloads beyond one waiting are dropped, as the agent drops beyond its queue,
        // so rows 1..3 are stored while the first post waits for its retry.
        const r = await driver(s, state, ['--batches', '4', '--gap-ms', '100',
            '--queue-max', '1']);
        assert.equal(r.code, 0, r.stderr);
        const fsReqs = s.state.requests.filter((q) => q.path.endsWith('/file_stream'));
        const dropped = fsReqs.findLastIndex((q) => q.status === 0);
        assert.equal(fsReqs.filter((q) => q.status === 0).length, 2);
        const retry = fsReqs[dropped + 1];
        assert.ok(retry, 'the dropped post was retried');
        assert.equal(retry.body, fsReqs[dropped].body, 'the retry repeats the body byte for byte');
        assert.ok(retry.t - fsReqs[dropped].t >= 1950,
            `and backs off first: ${JSON.stringify(fsReqs.map((q) => [q.t, q.status, q.body.length]))}`);
        checkRun(s.state.runs['alice/gov/exp0-gov'], 4);
        assert.deepEqual(s.state.rejected, []);
    }));

test('a 60-second 503 outage loses nothing', { skip: !haveDriver, timeout: 240000 }, () => withDriverStandin(async (s, state) => {
    s.fault({ status: 503, durationMs: 60000 });
    const r = await driver(s, state, ['--runs', '2', '--batches', '8', '--gap-ms', '8000',
        '--max-seconds', '180', '--final']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(out.retries > 0, 'the outage was seen');
    assert.equal(out.drops, 0);
    assert.ok(s.state.requests.filter((q) => q.status === 503).length > 3);
    for (const i of [0, 1]) checkRun(s.state.runs[`alice/gov/exp${i}-gov`], 8, { complete: true });
    assert.deepEqual(s.state.rejected, []);
}));

test('a bad key gives one clear error and keeps the data for kt wandb sync', { skip: !haveDriver },
    () => withDriverStandin(async (s, state) => {
        let r = await driver(s, state, ['--runs', '3', '--batches', '2'],
            wbEnv(s, { WANDB_API_KEY: 'wrong-key-0000000000000000000000000000000000' }));
        assert.equal(r.code, 0, r.stderr);
        const errs = r.stderr.split('\n').filter((l) => /level=error/i.test(l));
        assert.equal(errs.length, 1, r.stderr);
        assert.match(errs[0], /rejected the credentials/);
        assert.match(errs[0], /user is not logged in/);
        assert.ok(!r.stderr.includes('wrong-key'), 'the key is not logged');
        assert.equal(s.state.requests.length, 1, 'nothing more is sent after a 401');
        r = await sync(path.join(state, 'wandb'), wbEnv(s));
        assert.equal(r.code, 0, r.stderr);
        for (const i of [0, 1, 2]) checkRun(s.state.runs[`alice/gov/exp${i}-gov`], 2);
    }));

test('offline, then kt wandb sync, gives what online gives', { skip: !haveDriver }, async () => {
    const online = await startStandin({ keys: [KEY] });
    const later = await startStandin({ keys: [KEY] });
    const stateOn = makeTempDir('kt-wandb-');
    const stateOff = makeTempDir('kt-wandb-');
    try {
        let r = await driver(online, stateOn, ['--runs', '2', '--batches', '3', '--final']);
        assert.equal(r.code, 0, r.stderr);
        r = await driver(later, stateOff, ['--runs', '2', '--batches', '3', '--final'],
            wbEnv(later, { WANDB_API_KEY: undefined }));
        assert.equal(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout).online, false);
        assert.match(r.stderr, /no W&B credentials.*wandb-offline/);
        assert.equal(later.state.requests.length, 0, 'offline sends nothing');
        const dir = path.join(stateOff, 'wandb-offline');
        r = await sync(dir, wbEnv(later));
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /2 run\(s\).*2 uploaded, 0 failed/);
        const posts = later.state.requests.length;
        r = await sync(dir, wbEnv(later));
        assert.equal(r.code, 0, r.stderr);
        const again = later.state.requests.slice(posts).filter((q) => q.path.endsWith('file_stream'));
        assert.equal(again.length, 0, 'a second sync resumes: nothing left to send');
        for (const k of ['alice/gov/exp0-gov', 'alice/gov/exp1-gov']) {
            const a = online.state.runs[k];
            const b = later.state.runs[k];
            checkRun(b, 3, { complete: true });
            assert.deepEqual(rows(b).map(strip), rows(a).map(strip));
            assert.deepEqual(JSON.parse(b.config), JSON.parse(a.config));
            assert.equal(b.groupName, a.groupName);
        }
        assert.equal(later.state.viewInserts, 2, 'sync ships the dashboards too');
    } finally {
        await online.close();
        await later.close();
    }
});

test('shared mode writes into the tagged run without _step, per-host companion ids',
    { skip: !haveDriver }, () => withStandin({ keys: [KEY] }, async (s) => {
        // The experiment's own run exists (its SDK created it).
        const auth = { authorization: `Basic ${Buffer.from(`api:${KEY}`).toString('base64')}` };
        await fetch(`${s.url}/graphql`, { method: 'POST', headers: auth, body: JSON.stringify({
            query: 'mutation UpsertBucket($name: String, $project: String, $config: JSONString) {'
                + ' upsertBucket(input: {name: $name, modelName: $project, config: $config})'
                + ' { bucket { id } } }',
            operationName: 'UpsertBucket',
            variables: { name: 'exp0', project: 'gov', config: JSON.stringify({ lr: { value: 1 } }) } }) });
        const state = makeTempDir('kt-wandb-');
        let r = await run(driverBin, ['--state', state, '--config',
            'upload_interval: 0s\nrun_mapping: shared\n', '--batches', '2'], wbEnv(s));
        assert.equal(r.code, 0, r.stderr);
        const run0 = s.state.runs['alice/gov/exp0'];
        assert.equal(JSON.parse(run0.config).lr.value, 1, 'the experiment config is untouched');
        const clients = Object.keys(run0.shared);
        assert.equal(clients.length, 1);
        assert.equal(run0.shared[clients[0]].length, 2);
        assert.deepEqual(s.state.rejected, []);
        for (const label of ['node1', 'node2']) {
            const st = makeTempDir('kt-wandb-');
            r = await run(driverBin, ['--state', st, '--label', label, '--config',
                'upload_interval: 0s\nper_host: true\n', '--batches', '2'], wbEnv(s));
            assert.equal(r.code, 0, r.stderr);
            checkRun(s.state.runs[`alice/gov/exp0-gov-${label}`], 2);
            assert.equal(s.state.runs[`alice/gov/exp0-gov-${label}`].groupName, 'exp0');
        }
    }));
