// tests/e2e/otlp-standin/server.mjs - an OTLP/HTTP receiver stand-in (a collector's front door)
// SPDX-License-Identifier: Apache-2.0
//
// Speaks OTLP/HTTP as the specification defines it: POST /v1/traces and /v1/metrics with
// application/x-protobuf bodies (gzip when Content-Encoding says so), answered 200 with an
// empty Export*ServiceResponse. Bodies are decoded with the protobuf definitions the
// OpenTelemetry JS project generated from the official opentelemetry-proto files (shipped in
// @opentelemetry/otlp-transformer, installed here as `otlp-proto-root`): no hand-written
// schema, so a wrong field number or wire type in kt shows up as a wrong or missing value.
// Faults: outage(status, retryAfter) answers every export with that status until
// outage(null); every answered request is logged in .log with its status.
import http from 'node:http';
import { createRequire } from 'node:module';
import zlib from 'node:zlib';

import { trackServer } from '../lib/live.mjs';

const require = createRequire(import.meta.url);
const root = require('otlp-proto-root/build/src/generated/root.js');

const otlp = root.opentelemetry.proto;
export const TraceRequest = otlp.collector.trace.v1.ExportTraceServiceRequest;
export const TraceResponse = otlp.collector.trace.v1.ExportTraceServiceResponse;
export const MetricsRequest = otlp.collector.metrics.v1.ExportMetricsServiceRequest;
export const MetricsResponse = otlp.collector.metrics.v1.ExportMetricsServiceResponse;

const BODY_MAX = 64 * 1024 * 1024;

/** An OTLP AnyValue as a plain JS value (ints as Numbers, arrays as arrays). */
export function anyValue(v) {
    if (!v) {
        return undefined;
    }
    if (v.stringValue !== undefined && v.stringValue !== null) {
        return v.stringValue;
    }
    if (v.boolValue !== undefined && v.boolValue !== null) {
        return v.boolValue;
    }
    if (v.intValue !== undefined && v.intValue !== null) {
        return Number(v.intValue);
    }
    if (v.doubleValue !== undefined && v.doubleValue !== null) {
        return v.doubleValue;
    }
    if (v.arrayValue) {
        return (v.arrayValue.values || []).map(anyValue);
    }
    return undefined;
}

/** KeyValue list -> { key: value }. */
export function attrs(list) {
    const out = {};
    for (const kv of list || []) {
        out[kv.key] = anyValue(kv.value);
    }
    return out;
}

const hex = (b) => (b && b.length ? Buffer.from(b).toString('hex') : '');

/** Every item of decoded OTLP requests with its scope and its resource's attributes: the
 * spans (resourceSpans, scopeSpans, spans) or the metrics (resourceMetrics, scopeMetrics,
 * metrics) of all requests, in order. */
function* items(requests, resourceKey, scopeKey, itemKey) {
    for (const req of requests) {
        for (const r of req[resourceKey] || []) {
            const resource = attrs(r.resource && r.resource.attributes);
            for (const scope of r[scopeKey] || []) {
                for (const item of scope[itemKey] || []) {
                    yield { item, scope, resource };
                }
            }
        }
    }
}

/** Flatten decoded trace requests into spans with hex ids, numbers and attribute maps. */
export function flattenSpans(requests) {
    const spans = [];
    for (const { item: s, scope: ss, resource } of items(requests, 'resourceSpans', 'scopeSpans',
        'spans')) {
        spans.push({
            traceId: hex(s.traceId),
            spanId: hex(s.spanId),
            parentSpanId: hex(s.parentSpanId),
            traceState: s.traceState || '',
            flags: s.flags || 0,
            name: s.name,
            kind: s.kind,
            start: BigInt(s.startTimeUnixNano.toString()),
            end: BigInt(s.endTimeUnixNano.toString()),
            attributes: attrs(s.attributes),
            status: s.status ? { code: s.status.code || 0,
                message: s.status.message || '' } : { code: 0, message: '' },
            resource,
            scope: ss.scope ? ss.scope.name : '',
        });
    }
    return spans;
}

/** Flatten decoded metric requests into [{ name, unit, kind, temporality, points }]. */
export function flattenMetrics(requests) {
    const out = [];
    for (const { item: m, resource } of items(requests, 'resourceMetrics', 'scopeMetrics',
        'metrics')) {
        const base = { name: m.name, unit: m.unit, description: m.description, resource };
        if (m.sum) {
            out.push({ ...base, kind: 'sum', monotonic: !!m.sum.isMonotonic,
                temporality: m.sum.aggregationTemporality,
                points: (m.sum.dataPoints || []).map((p) => ({
                    attributes: attrs(p.attributes),
                    value: p.asInt !== undefined && p.asInt !== null
                        ? Number(p.asInt) : p.asDouble,
                    start: BigInt(p.startTimeUnixNano.toString()),
                    time: BigInt(p.timeUnixNano.toString()),
                })) });
        } else if (m.histogram) {
            out.push({ ...base, kind: 'histogram',
                temporality: m.histogram.aggregationTemporality,
                points: (m.histogram.dataPoints || []).map((p) => ({
                    attributes: attrs(p.attributes),
                    count: Number(p.count),
                    sum: p.sum,
                    min: p.min,
                    max: p.max,
                    bucketCounts: (p.bucketCounts || []).map(Number),
                    explicitBounds: p.explicitBounds || [],
                    start: BigInt(p.startTimeUnixNano.toString()),
                    time: BigInt(p.timeUnixNano.toString()),
                })) });
        } else {
            out.push({ ...base, kind: 'other', points: [] });
        }
    }
    return out;
}

/**
 * Start the receiver on 127.0.0.1 (port 0: any free port).
 * Returns { url, port, traces: [decoded], metrics: [decoded], log: [{path, status}],
 *   headers: [request headers], outage(status|null, retryAfter), spans(), metricsFlat(),
 *   waitFor(fn, limitMs), close() }.
 */
export async function startOtlpStandin() {
    const traces = [];
    const metrics = [];
    const log = [];
    const headers = [];
    let fault = null;

    const server = http.createServer((req, res) => {
        const chunks = [];
        let size = 0;
        req.on('data', (d) => {
            size += d.length;
            if (size <= BODY_MAX) {
                chunks.push(d);
            }
        });
        req.on('end', () => {
            const answer = (status, body, ctype = 'application/x-protobuf', extra = {}) => {
                log.push({ path: req.url, status });
                res.writeHead(status, { 'Content-Type': ctype, ...extra });
                res.end(body);
            };
            if (req.method !== 'POST' || (req.url !== '/v1/traces' && req.url !== '/v1/metrics')) {
                answer(404, 'not found', 'text/plain');
                return;
            }
            if (size > BODY_MAX) {
                answer(413, 'too large', 'text/plain');
                return;
            }
            if (fault) {
                answer(fault.status, '', 'text/plain',
                    fault.retryAfter !== undefined ? { 'Retry-After': String(fault.retryAfter) } : {});
                return;
            }
            if (req.headers['content-type'] !== 'application/x-protobuf') {
                answer(415, 'unsupported media type', 'text/plain');
                return;
            }
            let body = Buffer.concat(chunks);
            try {
                if (req.headers['content-encoding'] === 'gzip') {
                    body = zlib.gunzipSync(body);
                }
                if (req.url === '/v1/traces') {
                    traces.push(TraceRequest.decode(body));
                    answer(200, Buffer.from(TraceResponse.encode(TraceResponse.create({})).finish()));
                } else {
                    metrics.push(MetricsRequest.decode(body));
                    answer(200,
                        Buffer.from(MetricsResponse.encode(MetricsResponse.create({})).finish()));
                }
                headers.push({ path: req.url, headers: req.headers });
            } catch (e) {
                answer(400, `cannot decode: ${e.message}`, 'text/plain');
            }
        });
    });
    trackServer(server); /* a test failing before close() must not leave it listening */
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = server.address().port;
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    return {
        port,
        url: `http://127.0.0.1:${port}`,
        traces,
        metrics,
        log,
        headers,
        outage(status, retryAfter) {
            fault = status ? { status, retryAfter } : null;
        },
        spans: () => flattenSpans(traces),
        metricsFlat: () => flattenMetrics(metrics),
        /** Bounded poll until fn() is truthy; returns its value or throws after limitMs. */
        async waitFor(fn, limitMs = 30000, what = 'condition') {
            for (let waited = 0; waited <= limitMs; waited += 50) {
                const v = fn();
                if (v) {
                    return v;
                }
                await sleep(50);
            }
            throw new Error(`OTLP stand-in: timed out waiting for ${what}`);
        },
        close: () => new Promise((resolve) => {
            server.closeAllConnections?.();
            server.close(() => resolve());
        }),
    };
}
