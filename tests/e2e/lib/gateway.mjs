// tests/e2e/lib/gateway.mjs - run `kt gateway run` on 127.0.0.1:0 and talk to it
// SPDX-License-Identifier: Apache-2.0

import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';

import { makeTempDir, spawnKt, testEnv } from './proc.mjs';

/** The upstream secret the gateway is given in tests; the client never sends it. */
export const TEST_SECRET = 'sk-kt-e2e-upstream-secret-0123456789';

/** A value for YAML that is safe whatever it holds. */
function yamlScalar(v) {
    if (typeof v === 'number' || typeof v === 'boolean') {
        return String(v);
    }
    return JSON.stringify(String(v));
}

/**
 * The product page's policy-config.yaml, pointed at a stand-in.
 * opts.upstream     a startUpstream() result (uses its baseURL), or
 * opts.baseUrl      any base URL (e.g. a closed port for "upstream down")
 * opts.secretEnv    name of the env var holding the secret (default OPENAI_API_KEY)
 * opts.firstByteTimeout / idleTimeout / connectTimeout   e.g. '1s'
 * opts.streamUsage  false to stop the gateway asking for usage on streams
 * opts.maxBodyBytes e.g. '1KiB' -> gateway: {max_body_bytes: 1KiB}
 * opts.gateway      more `gateway:` settings, {key: value}
 * opts.chain        replaces policies.chain (array of names)
 * opts.packEnabled  pack.enabled (default true)
 * opts.targetExtra  more target keys, {key: value}
 * opts.extra        YAML text appended as is (top-level sections)
 */
export function pageConfig(opts = {}) {
    const baseUrl = opts.baseUrl || (opts.upstream && opts.upstream.baseURL);
    const secretEnv = opts.secretEnv || 'OPENAI_API_KEY';
    const chain = opts.chain || ['prompt-injection', 'pii-detector', 'audit-logger'];
    const target = [];
    if (baseUrl) {
        target.push(`      base_url: ${yamlScalar(baseUrl)}`);
    }
    const timeouts = {
        first_byte_timeout: opts.firstByteTimeout,
        idle_timeout: opts.idleTimeout,
        connect_timeout: opts.connectTimeout,
        stream_usage: opts.streamUsage,
        ...(opts.targetExtra || {}),
    };
    for (const [k, v] of Object.entries(timeouts)) {
        if (v !== undefined) {
            target.push(`      ${k}: ${typeof v === 'string' ? v : yamlScalar(v)}`);
        }
    }
    const gateway = { ...(opts.gateway || {}) };
    if (opts.maxBodyBytes !== undefined) {
        gateway.max_body_bytes = opts.maxBodyBytes;
    }
    const gwLines = Object.entries(gateway).map(([k, v]) => `  ${k}: ${v}`);

    return [
        'pack:',
        '  name: wandb-governed-experiments',
        '  version: 1.0.0',
        `  enabled: ${opts.packEnabled === false ? 'false' : 'true'}`,
        'providers:',
        '  targets:',
        '    - id: experiment-llm',
        '      provider: openai:chat:gpt-4o',
        '      secret_key_ref:',
        `        env: ${secretEnv}`,
        ...target,
        'policies:',
        `  chain: [${chain.join(', ')}]`,
        'policy:',
        '  prompt-injection:',
        '    threshold: 0.8',
        '    action: block',
        '  pii-detector:',
        '    action: redact',
        '    entities: [PERSON, EMAIL_ADDRESS]',
        '  audit-logger:',
        '    immutable: true',
        '    retention_days: 365',
        '    log_all_access: true',
        ...(gwLines.length ? ['gateway:', ...gwLines] : []),
        ...(opts.extra ? [opts.extra.replace(/\n$/, '')] : []),
        '',
    ].join('\n');
}

/** Write YAML text into a fresh temp dir; returns { dir, file }. */
export function writeConfig(yaml, name = 'policy-config.yaml') {
    const dir = makeTempDir('kt-e2e-gw-');
    const file = path.join(dir, name);
    writeFileSync(file, yaml);
    return { dir, file };
}

/** Parse the bound address from the gateway's "listening" log line. */
export const LISTENING_RE = /msg="?listening"?[^\n]*?\baddr="?(\[[^\]]+\]|[^\s":]+):(\d+)/;

/**
 * Start `kt gateway run --listen 127.0.0.1:0 --policy-config <file> --state-dir <tmp>`.
 * opts.config  YAML text (default: pageConfig() with no base_url, i.e. pass one)
 * opts.env     extra environment; OPENAI_API_KEY defaults to TEST_SECRET
 * opts.args    extra arguments
 * opts.stateDir use this state dir instead of a fresh one (e.g. to share with an agent)
 * Returns { port, host, url, baseURL, dir, configPath, stateDir, stderr(), waitForLog(),
 *           stop(opts), proc }.
 */
export async function startGateway(opts = {}) {
    const yaml = opts.config !== undefined ? opts.config : pageConfig(opts);
    const { dir, file } = writeConfig(yaml);
    const stateDir = opts.stateDir || path.join(dir, 'state');
    const env = testEnv({ OPENAI_API_KEY: TEST_SECRET, ...(opts.env || {}) });
    const args = ['gateway', 'run', '--listen', opts.listen || '127.0.0.1:0',
        '--policy-config', file, '--state-dir', stateDir, ...(opts.args || [])];
    const proc = await spawnKt(args, { env, ready: LISTENING_RE, name: 'kt gateway',
        timeoutMs: opts.readyTimeoutMs || 30000 });
    const host = proc.ready[1].replace(/^\[|\]$/g, '');
    const port = Number(proc.ready[2]);
    const url = `http://127.0.0.1:${port}`;
    return {
        proc,
        host,
        port,
        url,
        baseURL: `${url}/v1`,
        dir,
        configPath: file,
        stateDir,
        stderr: proc.stderr,
        waitForLog: proc.waitForLog,
        stop: proc.stop,
    };
}

/**
 * The official openai client pointed at the gateway. apiKey "unused" (the gateway holds the
 * real secret). opts.headers become defaultHeaders (e.g. {'X-Wandb-Run-Id': 'run-1'}).
 * Retries are off by default so each call is exactly one request.
 */
export function client(gw, opts = {}) {
    return new OpenAI({
        baseURL: gw.baseURL,
        apiKey: opts.apiKey || 'unused',
        defaultHeaders: opts.headers || opts.defaultHeaders,
        maxRetries: opts.maxRetries ?? 0,
        timeout: opts.timeout ?? 30000,
        ...(opts.fetchOptions ? { fetchOptions: opts.fetchOptions } : {}),
    });
}

/**
 * One gpt-4o chat call of `content` on `oa` (a client()), streamed (read to its end) or not:
 * 'ok', or the HTTP status the call was refused with.
 */
export async function chatOutcome(oa, content, stream = false) {
    try {
        if (stream) {
            const s = await oa.chat.completions.create({ model: 'gpt-4o', stream: true,
                messages: [{ role: 'user', content }] });
            for await (const chunk of s) {
                void chunk;
            }
        } else {
            await oa.chat.completions.create({ model: 'gpt-4o',
                messages: [{ role: 'user', content }] });
        }
        return 'ok';
    } catch (e) {
        return e.status;
    }
}

/**
 * A raw HTTP request to the gateway (for what the client library will not send).
 * Returns { status, headers, body (string), json (parsed or null), socketPort }.
 * opts.agent lets several calls share one keep-alive connection.
 */
export function rawRequest(gw, { method = 'GET', path: p = '/', headers = {}, body, agent,
    timeoutMs = 30000 } = {}) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined
            : (Buffer.isBuffer(body) || typeof body === 'string' ? body : JSON.stringify(body));
        const h = { ...headers };
        if (data !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
            h['content-type'] = 'application/json';
        }
        if (data !== undefined) {
            h['content-length'] = Buffer.byteLength(data);
        }
        const req = http.request({ host: '127.0.0.1', port: gw.port, method, path: p,
            headers: h, agent: agent === undefined ? false : agent }, (res) => {
            const parts = [];
            res.on('data', (c) => parts.push(c));
            res.on('end', () => {
                const text = Buffer.concat(parts).toString('utf8');
                let json = null;
                try {
                    json = JSON.parse(text);
                } catch {
                    json = null;
                }
                resolve({ status: res.statusCode, headers: res.headers, body: text, json,
                    socketPort: res.socket && res.socket.localPort });
            });
            res.on('error', reject);
        });
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${p} timed out`)));
        req.on('error', reject);
        if (data !== undefined) {
            req.write(data);
        }
        req.end();
    });
}

/** A small valid chat body. */
export function chatBody(content = 'Summarise the last training run in one sentence.',
    extra = {}) {
    return { model: 'gpt-4o', messages: [{ role: 'user', content }], ...extra };
}
