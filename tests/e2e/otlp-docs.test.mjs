// tests/e2e/otlp-docs.test.mjs - the fleet guide's collector config is a valid collector config
// SPDX-License-Identifier: Apache-2.0
//
// The OpenTelemetry Collector is not packaged for Debian, so its own `validate` cannot run
// here; this checks what it would check first: the YAML parses, every pipeline names
// receivers, processors and exporters defined in the file, the OTLP/HTTP receiver listens on
// the port kt's docs tell agents to use, and the Weave exporter sends protobuf to Weave's
// traces endpoint (Weave takes protobuf traces only).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import YAML from 'yaml';

import { REPO_ROOT } from './lib/index.mjs';

const file = path.join(REPO_ROOT, 'docs', 'otel-collector.yaml');

test('docs/otel-collector.yaml parses and its pipelines are complete', () => {
    const doc = YAML.parseDocument(readFileSync(file, 'utf8'), { strict: true,
        uniqueKeys: true });
    assert.deepEqual(doc.errors, []);
    const cfg = doc.toJS();
    for (const key of ['receivers', 'processors', 'exporters', 'service']) {
        assert.equal(typeof cfg[key], 'object', `${key} is a mapping`);
    }
    assert.equal(cfg.receivers.otlp.protocols.http.endpoint, '0.0.0.0:4318');
    const pipelines = cfg.service.pipelines;
    assert.deepEqual(Object.keys(pipelines).sort(), ['metrics', 'traces']);
    for (const [name, p] of Object.entries(pipelines)) {
        assert.ok(p.receivers.length > 0 && p.exporters.length > 0, name);
        for (const r of p.receivers) {
            assert.ok(r in cfg.receivers, `${name}: receiver ${r} is defined`);
        }
        for (const x of p.processors || []) {
            assert.ok(x in cfg.processors, `${name}: processor ${x} is defined`);
        }
        for (const e of p.exporters) {
            assert.ok(e in cfg.exporters, `${name}: exporter ${e} is defined`);
        }
        // memory_limiter first, batch after it: the collector's documented order.
        assert.deepEqual(p.processors, ['memory_limiter', 'batch']);
    }
    const used = new Set(Object.values(pipelines).flatMap((p) => p.exporters));
    for (const e of Object.keys(cfg.exporters)) {
        assert.ok(used.has(e), `exporter ${e} is used by a pipeline`);
    }
    const weave = cfg.exporters['otlphttp/weave'];
    assert.equal(weave.traces_endpoint, 'https://trace.wandb.ai/otel/v1/traces');
    assert.equal(weave.encoding, 'proto');
    assert.ok(!pipelines.metrics.exporters.includes('otlphttp/weave'),
        'Weave takes traces, not metrics');
});
