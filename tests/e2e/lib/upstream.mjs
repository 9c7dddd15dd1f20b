// tests/e2e/lib/upstream.mjs - a local stand-in for OpenAI's POST /v1/chat/completions
// SPDX-License-Identifier: Apache-2.0
//
// It speaks OpenAI's wire format closely enough that the official `openai` client parses it
// directly (upstream.test.mjs proves that without the gateway), so what the gateway forwards
// and relays is checked against the real shapes: `chat.completion` objects, SSE
// `chat.completion.chunk` events ending in `data: [DONE]`, and `{"error":{...}}` bodies.
//
// Every request is recorded (method, path, headers including Authorization, raw and parsed
// body). Behaviour is scripted per test:
//   up.behave(b)     default behaviour for every request from now on
//   up.enqueue(b)    behaviour for the next request only (a FIFO; wins over behave)
// where b is an object (or a function (record) => object) with any of:
//   text             reply text, or (record) => text           default: a fixed sentence
//   echo             reply with the last user message's text   (shows what the model got)
//   chunks           explicit content deltas for streams        default: text split by words
//   toolCalls        streamed tool calls [{ name, arguments: [fragments] }]: one delta naming
//                    each call, then one per arguments fragment; no content deltas unless
//                    chunks is given; finish reason "tool_calls" unless finishReason is
//   refusal          streamed refusal fragments [..], each one delta.refusal event
//   delayMs          wait before sending anything (headers included)
//   chunkDelayMs     wait between stream events
//   status, error    answer with this status and {"error": error} (OpenAI's shape)
//   body             raw response body (string) with status; content-type application/json
//   headers          extra response headers
//   hang             never answer (the socket stays open until close())
//   close            destroy the connection without answering
//   stallAfterChunks stream this many events, then go silent (idle timeouts)
//   closeAfterChunks stream this many events, then destroy the connection
//   model            model name reported back (default: the requested one)
//   finishReason     default "stop"
// Usage is deterministic: countTokens() below, so tests can compute the expected numbers.

import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';

import { trackServer } from './live.mjs';

export const DEFAULT_REPLY = 'The stand-in upstream says hello from the experiment.';
const FINGERPRINT = 'fp_ktstandin';

/** Deterministic token count: whitespace-separated words. */
export function countTokens(text) {
    if (typeof text !== 'string' || text.length === 0) {
        return 0;
    }
    return text.split(/\s+/).filter(Boolean).length;
}

/** Text of one message's content: a string or an array of content parts. */
export function contentText(content) {
    if (typeof content === 'string') {
        return content;
    }
    if (Array.isArray(content)) {
        return content
            .filter((p) => p && p.type === 'text' && typeof p.text === 'string')
            .map((p) => p.text)
            .join('\n');
    }
    return '';
}

/** prompt_tokens as the stand-in reports them: 3 per message + words, + 3 for priming. */
export function promptTokens(messages) {
    let n = 3;
    for (const m of messages || []) {
        n += 3 + countTokens(contentText(m && m.content));
    }
    return n;
}

export function usageFor(messages, text) {
    const prompt = promptTokens(messages);
    const completion = countTokens(text);
    return {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: {
            reasoning_tokens: 0,
            audio_tokens: 0,
            accepted_prediction_tokens: 0,
            rejected_prediction_tokens: 0,
        },
    };
}

/** Split text into deltas the way a model streams: each word keeps its leading space. */
export function splitDeltas(text) {
    const parts = text.match(/\s*\S+/g);
    return parts && parts.length ? parts : [text];
}

function openaiError(message, type, code = null, param = null) {
    return { message, type, param, code };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function lastUserText(messages) {
    for (let i = (messages || []).length - 1; i >= 0; i--) {
        if (messages[i] && messages[i].role === 'user') {
            return contentText(messages[i].content);
        }
    }
    return '';
}

/**
 * Start the stand-in on 127.0.0.1:0.
 * opts.requireKey: when set, requests whose Authorization is not `Bearer <requireKey>` get
 *                  OpenAI's 401 invalid_api_key answer.
 * opts.behave:     the initial default behaviour (see the header comment).
 * opts.models:     ids listed by GET /v1/models (default ['gpt-4o']).
 * opts.tls:        {key, cert} (PEM): serve HTTPS with them instead of HTTP.
 * opts.urlHost:    host name put in url/baseURL (default the listen host), e.g. 'localhost'
 *                  so a client checks a certificate issued for that name.
 * Returns { port, url, baseURL, requests, connections, behave, enqueue, reset, waitForRequests,
 * close }. connections counts accepted connections; with opts.tls, resumed counts TLS handshakes
 * that resumed an earlier session.
 */
export async function startUpstream(opts = {}) {
    const requests = [];
    const queue = [];
    let defaultBehaviour = opts.behave || {};
    const sockets = new Set();
    const waiters = [];

    function notify() {
        for (let i = waiters.length - 1; i >= 0; i--) {
            if (requests.length >= waiters[i].n) {
                waiters[i].resolve(requests);
                waiters.splice(i, 1);
            }
        }
    }

    function pick(rec) {
        let b = queue.length ? queue.shift() : defaultBehaviour;
        if (typeof b === 'function') {
            b = b(rec);
        }
        return b || {};
    }

    function sendJson(res, status, obj, extra = {}) {
        const body = JSON.stringify(obj);
        res.writeHead(status, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'x-request-id': `req_${randomBytes(8).toString('hex')}`,
            'openai-version': '2020-10-01',
            'openai-processing-ms': '1',
            ...extra,
        });
        res.end(body);
    }

    async function chat(req, res, rec, b) {
        const body = rec.body;
        if (body === null) {
            sendJson(res, 400, {
                error: openaiError(
                    'We could not parse the JSON body of your request. (HINT: This likely means ' +
                        "you aren't using your HTTP library correctly. The OpenAI API expects a " +
                        'JSON payload, but what was sent was not valid JSON.)',
                    'invalid_request_error'),
            });
            return;
        }
        if (typeof body.model !== 'string') {
            sendJson(res, 400, {
                error: openaiError("Missing required parameter: 'model'.", 'invalid_request_error',
                    'missing_required_parameter', 'model'),
            });
            return;
        }
        if (!Array.isArray(body.messages)) {
            sendJson(res, 400, {
                error: openaiError("Missing required parameter: 'messages'.",
                    'invalid_request_error', 'missing_required_parameter', 'messages'),
            });
            return;
        }
        let text = DEFAULT_REPLY;
        if (b.echo) {
            text = lastUserText(body.messages);
        } else if (typeof b.text === 'function') {
            text = b.text(rec);
        } else if (typeof b.text === 'string') {
            text = b.text;
        }
        const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
        const created = Math.floor(Date.now() / 1000);
        const model = b.model || body.model;
        const finish = b.finishReason || 'stop';
        const usage = usageFor(body.messages, text);

        if (!body.stream) {
            sendJson(res, 200, {
                id,
                object: 'chat.completion',
                created,
                model,
                choices: [
                    {
                        index: 0,
                        message: { role: 'assistant', content: text, refusal: null, annotations: [] },
                        logprobs: null,
                        finish_reason: finish,
                    },
                ],
                usage,
                service_tier: 'default',
                system_fingerprint: FINGERPRINT,
            }, b.headers);
            return;
        }

        const includeUsage = !!(body.stream_options && body.stream_options.include_usage);
        const base = { id, object: 'chat.completion.chunk', created, model,
            service_tier: 'default', system_fingerprint: FINGERPRINT };
        const chunk = (choices, usageField) => {
            const c = { ...base, choices };
            if (includeUsage) {
                c.usage = usageField === undefined ? null : usageField;
            }
            return c;
        };
        const events = [];
        events.push(chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null },
            logprobs: null, finish_reason: null }]));
        const sideParts = Array.isArray(b.toolCalls) || Array.isArray(b.refusal);
        const deltas = Array.isArray(b.chunks) ? b.chunks : sideParts ? [] : splitDeltas(text);
        const one = (delta) => events.push(chunk([{ index: 0, delta, logprobs: null,
            finish_reason: null }]));
        for (const d of deltas) {
            one({ content: d });
        }
        for (const d of b.refusal || []) {
            one({ refusal: d });
        }
        (b.toolCalls || []).forEach((call, k) => {
            one({ tool_calls: [{ index: k, id: `call_${randomBytes(6).toString('hex')}`,
                type: 'function', function: { name: call.name, arguments: '' } }] });
            for (const frag of call.arguments) {
                one({ tool_calls: [{ index: k, function: { arguments: frag } }] });
            }
        });
        const last = b.finishReason || (Array.isArray(b.toolCalls) ? 'tool_calls' : finish);
        events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: last }]));
        if (includeUsage) {
            const streamed = Array.isArray(b.chunks) ? b.chunks.join('') : text;
            events.push(chunk([], usageFor(body.messages, streamed)));
        }

        res.writeHead(200, {
            'content-type': 'text/event-stream; charset=utf-8',
            'cache-control': 'no-cache',
            'x-request-id': `req_${randomBytes(8).toString('hex')}`,
            'openai-version': '2020-10-01',
            'openai-processing-ms': '1',
            ...(b.headers || {}),
        });
        res.flushHeaders();
        let sent = 0;
        for (const ev of events) {
            if (b.stallAfterChunks !== undefined && sent >= b.stallAfterChunks) {
                return; /* go silent; close() ends the socket */
            }
            if (b.closeAfterChunks !== undefined && sent >= b.closeAfterChunks) {
                req.socket.destroy();
                return;
            }
            if (b.chunkDelayMs && sent > 0) {
                await sleep(b.chunkDelayMs);
            }
            if (res.destroyed) {
                return;
            }
            /* Wait until each event is handed to the kernel, so a scripted cut after it
             * cannot discard it. */
            await new Promise((resolve) => res.write(`data: ${JSON.stringify(ev)}\n\n`, resolve));
            sent++;
        }
        res.end('data: [DONE]\n\n');
    }

    async function handle(req, res, raw) {
        const url = new URL(req.url, 'http://127.0.0.1');
        let parsed = null;
        if (raw.length) {
            try {
                parsed = JSON.parse(raw.toString('utf8'));
            } catch {
                parsed = null;
            }
        }
        const rec = {
            method: req.method,
            path: url.pathname,
            url: req.url,
            headers: { ...req.headers },
            rawBody: raw.toString('utf8'),
            body: parsed,
            at: Date.now(),
        };
        requests.push(rec);
        notify();

        if (opts.requireKey !== undefined &&
            req.headers.authorization !== `Bearer ${opts.requireKey}`) {
            sendJson(res, 401, {
                error: openaiError('Incorrect API key provided. You can find your API key at ' +
                    'https://platform.openai.com/account/api-keys.', 'invalid_request_error',
                    'invalid_api_key'),
            });
            return;
        }

        if (req.method === 'GET' && url.pathname === '/v1/models') {
            const created = 1715367049;
            sendJson(res, 200, {
                object: 'list',
                data: (opts.models || ['gpt-4o']).map((id) => ({
                    id, object: 'model', created, owned_by: 'system' })),
            });
            return;
        }
        if (url.pathname !== '/v1/chat/completions') {
            sendJson(res, 404, {
                error: openaiError(`Invalid URL (${req.method} ${url.pathname})`,
                    'invalid_request_error'),
            });
            return;
        }
        if (req.method !== 'POST') {
            sendJson(res, 405, {
                error: openaiError(`Invalid method for URL (${req.method} ${url.pathname})`,
                    'invalid_request_error'),
            });
            return;
        }

        const b = pick(rec);
        if (b.delayMs) {
            await sleep(b.delayMs);
        }
        if (b.hang) {
            return; /* never answer; close() destroys the socket */
        }
        if (b.close) {
            req.socket.destroy();
            return;
        }
        if (b.body !== undefined) {
            const s = String(b.body);
            res.writeHead(b.status || 200, {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(s),
                ...(b.headers || {}),
            });
            res.end(s);
            return;
        }
        if (b.status && b.status !== 200) {
            sendJson(res, b.status, {
                error: b.error || openaiError('The server had an error while processing your ' +
                    'request. Sorry about that!', 'server_error'),
            }, b.headers);
            return;
        }
        await chat(req, res, rec, b);
    }

    const onRequest = (req, res) => {
        const parts = [];
        req.on('data', (c) => parts.push(c));
        req.on('end', () => {
            handle(req, res, Buffer.concat(parts)).catch((err) => {
                if (!res.headersSent) {
                    sendJson(res, 500, { error: openaiError(String(err), 'server_error') });
                } else {
                    res.destroy();
                }
            });
        });
    };
    /* Tracked so that a test failing before close() does not leave it listening. */
    const server = trackServer(opts.tls
        ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, onRequest)
        : http.createServer(onRequest));
    server.keepAliveTimeout = 30000;
    const counts = { connections: 0, resumed: 0 };
    server.on(opts.tls ? 'secureConnection' : 'connection', (s) => {
        counts.connections++;
        if (opts.tls && s.isSessionReused()) {
            counts.resumed++;
        }
    });
    server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port || 0, opts.host || '127.0.0.1', resolve);
    });
    const port = server.address().port;
    const host = opts.urlHost || opts.host || '127.0.0.1';
    const scheme = opts.tls ? 'https' : 'http';

    return {
        port,
        url: `${scheme}://${host}:${port}`,
        baseURL: `${scheme}://${host}:${port}/v1`,
        requests,
        get connections() {
            return counts.connections;
        },
        get resumed() {
            return counts.resumed;
        },
        /** Only the chat completion requests, in arrival order. */
        chats() {
            return requests.filter((r) => r.path === '/v1/chat/completions');
        },
        behave(b) {
            defaultBehaviour = b || {};
        },
        enqueue(b) {
            queue.push(b);
        },
        reset() {
            requests.length = 0;
            queue.length = 0;
            defaultBehaviour = opts.behave || {};
        },
        /** Resolves once n requests have arrived; rejects after timeoutMs. */
        waitForRequests(n, timeoutMs = 10000) {
            if (requests.length >= n) {
                return Promise.resolve(requests);
            }
            return new Promise((resolve, reject) => {
                const w = { n, resolve: (r) => { clearTimeout(t); resolve(r); } };
                const t = setTimeout(() => {
                    waiters.splice(waiters.indexOf(w), 1);
                    reject(new Error(`stand-in saw ${requests.length} requests, wanted ${n}`));
                }, timeoutMs);
                waiters.push(w);
            });
        },
        async close() {
            for (const s of sockets) {
                s.destroy();
            }
            await new Promise((resolve) => server.close(() => resolve()));
        },
    };
}
