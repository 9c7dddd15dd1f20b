// tests/e2e/dashboards.test.mjs - kt dashboards push against the W&B stand-in
// SPDX-License-Identifier: Apache-2.0
//
// The stand-in checks each GraphQL operation's variables against its declarations, knows
// only the projects a run or upsertModel created, and refuses a report whose run set does
// not name the project's internal id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runKt, makeTempDir, testEnv, sanitizerReport } from './lib/index.mjs';
import { checkVariables, withStandin } from './wandb-standin/server.mjs';

const KEY = `kt-${'d'.repeat(40)}`;

function env(s, extra = {}) {
    return testEnv({ WANDB_BASE_URL: s.url, WANDB_API_KEY: KEY, HOME: makeTempDir('kt-dash-home-'),
        NETRC: undefined, WANDB_ENTITY: undefined, WANDB_PROJECT: undefined, ...extra });
}

test('the stand-in checks variables against the operation like a GraphQL server', () => {
    const q = 'mutation M($a: String!, $b: String) { f(input: {a: $a, b: $b}) { id } }';
    assert.equal(checkVariables(q, 'M', { a: 'x' }), null);
    assert.equal(checkVariables(q, 'M', { a: 'x', b: null }), null);
    assert.match(checkVariables(q, 'M', { b: 'y' }), /"\$a" of required type "String!"/);
    assert.match(checkVariables(q, 'M', { a: 'x', locked: false }), /"\$locked" is not declared/);
    assert.match(checkVariables('query Q($a: ID) { f { id } }', 'Q', {}), /"\$a" is never used/);
    assert.match(checkVariables('query Q { f(id: $a) { id } }', 'Q', {}), /"\$a" is not defined/);
    assert.match(checkVariables('query Q { f(', 'Q', {}), /Syntax Error/);
});

test('dashboards push into a project no run created yet creates it and names its id',
    () => withStandin({ keys: [KEY] }, async (s) => {
        const state = makeTempDir('kt-dash-state-');
        const r = await runKt(['dashboards', 'push', '--project', 'fresh', '--state-dir', state],
            { env: env(s) });
        assert.equal(sanitizerReport(r.stderr), null, r.stderr);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(s.state.rejected, []);
        const ops = s.state.requests.filter((q) => q.path === '/graphql').map((q) => q.op);
        assert.deepEqual(ops, ['Viewer', 'ProjectInternalId', 'UpsertModel',
            'ProjectInternalId', 'UpsertView2', 'UpsertView2']);
        assert.ok(s.state.projects['alice/fresh']);
        const views = Object.values(s.state.views['alice/fresh']);
        const report = JSON.parse(views.find((v) => v.type === 'runs').spec);
        const grid = report.blocks.find((b) => b.type === 'panel-grid');
        assert.equal(grid.metadata.runSets[0].project.id, 'pid-alice-fresh');
        // Laid out three across in rows of height 6: no two panels share a cell.
        const layouts = grid.metadata.panelBankSectionConfig.panels.map((p) => p.layout);
        assert.deepEqual(layouts.map((l) => [l.x, l.y]),
            layouts.map((_, i) => [(i % 3) * 8, Math.floor(i / 3) * 6]));
        for (const q of s.state.requests) {
            assert.ok(!('locked' in (q.variables || {})), `${q.op} sends no undeclared locked`);
        }
        // A second push updates the same views; the project is not created again.
        const again = await runKt(['dashboards', 'push', '--project', 'fresh', '--state-dir',
            state], { env: env(s) });
        assert.equal(again.code, 0, again.stderr);
        assert.equal(s.state.viewInserts, 2);
        assert.equal(s.state.viewUpdates, 2);
        assert.equal(s.state.requests.filter((q) => q.op === 'UpsertModel').length, 1);
    }));

test('dashboards push stops with one clear line when W&B does not create the project',
    () => withStandin({ keys: [KEY] }, async (s) => {
        s.fault({ status: 403, op: 'UpsertModel' });
        const r = await runKt(['dashboards', 'push', '--project', 'p', '--state-dir',
            makeTempDir('kt-dash-state-')], { env: env(s) });
        assert.equal(r.code, 1);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, /^kt dashboards push: .*HTTP 403/);
        assert.equal(s.state.viewInserts, 0, 'no report pointing at project id ""');
    }));

test('dashboards push refuses to point a report at project id "" when W&B creates nothing',
    () => withStandin({ keys: [KEY] }, async (s) => {
        // W&B says yes to upsertModel but still knows no such project.
        s.fault({ status: 200, op: 'UpsertModel', body: { data: { upsertModel: { model: null } } } });
        const r = await runKt(['dashboards', 'push', '--project', 'p', '--state-dir',
            makeTempDir('kt-dash-state-')], { env: env(s) });
        assert.equal(r.code, 1);
        assert.equal(r.stderr, 'kt dashboards push: W&B has no project alice/p and did not create it\n');
        assert.equal(s.state.viewInserts, 0);
    }));
