// tests/e2e/otlp-standin.test.mjs - the OTLP stand-in receiver, proven against the official SDK
// SPDX-License-Identifier: Apache-2.0
//
// The stand-in in otlp-standin/ decides what kt's OTLP tests see, so it is checked first
// against the reference senders: the official @opentelemetry OTLP/HTTP protobuf exporters
// (traces and metrics, plain and gzip) export into it, and what it decodes must be exactly
// what the SDK was given: ids, parent links, kinds, attributes of every type, status,
// resource, counters and histogram buckets. A 503 with Retry-After makes the SDK retry.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { AggregationType, MeterProvider, PeriodicExportingMetricReader }
    from '@opentelemetry/sdk-metrics';

import { startOtlpStandin } from './otlp-standin/server.mjs';

const standins = [];
after(async () => {
    for (const s of standins) {
        await s.close();
    }
});

async function standin() {
    const s = await startOtlpStandin();
    standins.push(s);
    return s;
}

async function sdkTraces(url, compression) {
    const exporter = new OTLPTraceExporter({ url: `${url}/v1/traces`, compression });
    const provider = new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': 'standin-proof', 'deployment.env': 'e2e' }),
        spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer('proof-scope', '1.2.3');
    const parent = tracer.startSpan('parent op', { kind: SpanKind.SERVER,
        attributes: { 'http.request.method': 'POST', 'http.response.status_code': 200 } });
    const ctx = trace.setSpan(context.active(), parent);
    const child = tracer.startSpan('chat gpt-4o', { kind: SpanKind.CLIENT, attributes: {
        'gen_ai.usage.input_tokens': 12, 'kt.policy.score': 0.25, 'kt.streamed': true,
        'gen_ai.response.finish_reasons': ['stop', 'length'] } }, ctx);
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream_error' });
    child.end();
    parent.end();
    await provider.forceFlush();
    await provider.shutdown();
    return { parent: parent.spanContext(), child: child.spanContext() };
}

for (const compression of ['none', 'gzip']) {
    test(`official OTLP trace exporter (${compression}) decodes exactly`, async () => {
        const s = await standin();
        const ids = await sdkTraces(s.url, compression);
        const spans = await s.waitFor(() => s.spans().length >= 2 && s.spans(), 10000, 'spans');
        assert.equal(spans.length, 2);
        const child = spans.find((x) => x.name === 'chat gpt-4o');
        const parent = spans.find((x) => x.name === 'parent op');
        assert.equal(parent.traceId, ids.parent.traceId);
        assert.equal(parent.spanId, ids.parent.spanId);
        assert.equal(parent.parentSpanId, '');
        assert.equal(parent.kind, 2); // SERVER
        assert.equal(child.kind, 3); // CLIENT
        assert.equal(child.traceId, ids.parent.traceId);
        assert.equal(child.spanId, ids.child.spanId);
        assert.equal(child.parentSpanId, ids.parent.spanId);
        assert.deepEqual(parent.attributes,
            { 'http.request.method': 'POST', 'http.response.status_code': 200 });
        assert.deepEqual(child.attributes, { 'gen_ai.usage.input_tokens': 12,
            'kt.policy.score': 0.25, 'kt.streamed': true,
            'gen_ai.response.finish_reasons': ['stop', 'length'] });
        assert.deepEqual(child.status, { code: 2, message: 'upstream_error' });
        assert.ok(child.end >= child.start && child.start > 0n);
        assert.equal(child.scope, 'proof-scope');
        assert.equal(child.resource['service.name'], 'standin-proof');
        assert.equal(child.resource['deployment.env'], 'e2e');
        const hdr = s.headers.find((h) => h.path === '/v1/traces').headers;
        assert.equal(hdr['content-type'], 'application/x-protobuf');
        assert.equal(hdr['content-encoding'], compression === 'gzip' ? 'gzip' : undefined);
    });
}

test('official OTLP metric exporter: sums and explicit-bucket histograms decode exactly',
    async () => {
        const s = await standin();
        const exporter = new OTLPMetricExporter({ url: `${s.url}/v1/metrics` });
        const reader = new PeriodicExportingMetricReader({ exporter,
            exportIntervalMillis: 3600000 });
        const provider = new MeterProvider({
            resource: resourceFromAttributes({ 'service.name': 'standin-proof' }),
            readers: [reader],
            views: [{ instrumentName: 'gen_ai.client.operation.duration',
                aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
                    options: { boundaries: [0.01, 0.02, 0.04, 0.08] } } }],
        });
        const meter = provider.getMeter('proof-scope');
        const requests = meter.createCounter('kt.governance.requests', { unit: '{request}' });
        requests.add(3, { 'kt.decision': 'allowed' });
        requests.add(2, { 'kt.decision': 'blocked' });
        const dur = meter.createHistogram('gen_ai.client.operation.duration', { unit: 's' });
        for (const v of [0.005, 0.015, 0.015, 0.05, 1.5]) {
            dur.record(v, { 'gen_ai.request.model': 'gpt-4o' });
        }
        await reader.forceFlush();
        await provider.shutdown();
        const flat = await s.waitFor(() => s.metricsFlat().length >= 2 && s.metricsFlat(), 10000,
            'metrics');
        const req = flat.find((m) => m.name === 'kt.governance.requests');
        assert.equal(req.kind, 'sum');
        assert.equal(req.monotonic, true);
        assert.equal(req.temporality, 2); // CUMULATIVE
        assert.equal(req.unit, '{request}');
        const byDecision = Object.fromEntries(req.points.map((p) => [p.attributes['kt.decision'],
            p.value]));
        assert.deepEqual(byDecision, { allowed: 3, blocked: 2 });
        const h = flat.find((m) => m.name === 'gen_ai.client.operation.duration');
        assert.equal(h.kind, 'histogram');
        assert.equal(h.points.length, 1);
        assert.deepEqual(h.points[0].explicitBounds, [0.01, 0.02, 0.04, 0.08]);
        assert.deepEqual(h.points[0].bucketCounts, [1, 2, 0, 1, 1]);
        assert.equal(h.points[0].count, 5);
        assert.ok(Math.abs(h.points[0].sum - 1.585) < 1e-9);
        assert.equal(h.points[0].min, 0.005);
        assert.equal(h.points[0].max, 1.5);
    });

test('a 503 with Retry-After is retried by the official exporter and then decoded', async () => {
    const s = await standin();
    s.outage(503, 1);
    const done = sdkTraces(s.url, 'none');
    await s.waitFor(() => s.log.some((l) => l.status === 503), 10000, 'the 503');
    s.outage(null);
    await done;
    const spans = await s.waitFor(() => s.spans().length >= 2 && s.spans(), 15000, 'spans');
    assert.equal(spans.length, 2);
    assert.ok(s.log.filter((l) => l.status === 200).length >= 1);
});
