// tests/e2e/wandb-standin/server.mjs - a W&B server stand-in for the exporter's tests
// SPDX-License-Identifier: Apache-2.0
//
// Implements what ../shared/docs/wandb-protocol.md section 8.2 says an emulator must
// answer (Viewer, RunResumeStatus, UpsertBucket, ServerFeaturesQuery, upsertView,
// project internalId, file_stream) and rejects what the real server would: wrong Basic
// auth, config not in {"key":{"value":...}} form, history offset gaps, _step going back,
// malformed histograms, unknown file names. Faults (status codes, Retry-After, outages)
// are injected through POST /_standin/fault; GET /_standin/state dumps everything.
// The Weave trace server lives in weave.mjs, under /traces (and at the root).
import http from 'node:http';

import { Kind, parse as parseGraphql, visit } from 'graphql';

import { trackServer } from '../lib/live.mjs';
import { createWeave } from './weave.mjs';

const FILES = new Set(['wandb-history.jsonl', 'wandb-summary.json', 'wandb-events.jsonl',
  'output.log']);

function parseExtendedJson(text) {
  // History lines are extended JSON (NaN, Infinity); map the bare tokens to null.
  return JSON.parse(text.replace(/(?<=[:,\[]\s*)-?(NaN|Infinity)(?=\s*[,}\]])/g, 'null'));
}

function checkHistogram(v, where) {
  if (!Array.isArray(v.values) || !Array.isArray(v.bins)) {
    return `${where}: histogram needs values and bins arrays`;
  }
  if (v.values.length === 0 || v.values.length > 512) {
    return `${where}: histogram has ${v.values.length} values (1..512)`;
  }
  if (v.bins.length !== v.values.length + 1) {
    return `${where}: histogram has ${v.bins.length} bins for ${v.values.length} values`;
  }
  if (!v.values.every((x) => typeof x === 'number' && x >= 0)) {
    return `${where}: histogram values must be non-negative numbers`;
  }
  for (let i = 1; i < v.bins.length; i++) {
    if (typeof v.bins[i] !== 'number' || !(v.bins[i] > v.bins[i - 1])) {
      return `${where}: histogram bins must increase`;
    }
  }
  return null;
}

// What a GraphQL server checks about an operation's variables before running it: the
// document parses, every $variable used is declared and every declared one is used (the
// spec's NoUndefinedVariables / NoUnusedVariables), a non-null one is given, and the request
// carries no variable the operation does not declare (W&B's server refuses those).
// Returns an error message or null.
export function checkVariables(query, operationName, variables) {
  let doc;
  try {
    doc = parseGraphql(query || '');
  } catch (e) {
    return `Syntax Error: ${e.message}`;
  }
  const ops = doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  const op = operationName ? ops.find((d) => d.name && d.name.value === operationName) : ops[0];
  if (!op) return `Unknown operation named "${operationName}".`;
  const declared = new Map(op.variableDefinitions.map((d) => [d.variable.name.value, d]));
  const used = new Set();
  visit(op.selectionSet, { Variable(node) { used.add(node.name.value); } });
  for (const name of used) {
    if (!declared.has(name)) return `Variable "$${name}" is not defined by operation "${op.name.value}".`;
  }
  for (const [name, d] of declared) {
    if (!used.has(name)) return `Variable "$${name}" is never used in operation "${op.name.value}".`;
    const given = variables && variables[name];
    if (d.type.kind === Kind.NON_NULL_TYPE && (given === undefined || given === null) &&
      !d.defaultValue) {
      return `Variable "$${name}" of required type "${d.type.type.name ? d.type.type.name.value : '?'}!" was not provided.`;
    }
  }
  for (const name of Object.keys(variables || {})) {
    if (!declared.has(name)) return `Variable "$${name}" is not declared by operation "${op.name.value}".`;
  }
  return null;
}

function checkRowValues(row, where) {
  for (const [k, v] of Object.entries(row)) {
    if (v && typeof v === 'object' && v._type === 'histogram') {
      const err = checkHistogram(v, `${where} ${k}`);
      if (err) return err;
    }
  }
  return null;
}

export async function startStandin({ keys = ['k'.repeat(40)], entity = 'alice',
  captureRaw = false, lean = false, port = 0 } = {}) {
  const weave = createWeave({ lean });
  const raw = []; // every byte received (headers and bodies), when captureRaw
  const state = {
    requests: [], // {method, path, op, status, auth, headers}
    runs: {}, // "entity/project/name" -> run
    views: {}, // "entity/project" -> {name: view}
    projects: {}, // "entity/project" -> {id, internalId}
    viewInserts: 0,
    viewUpdates: 0,
    heartbeats: 0,
    rejected: [], // {path, status, message}
  };
  let faults = []; // {status | drop: true, count, untilMs, retryAfter, match}
  let nextId = 1;

  const b64 = (s) => Buffer.from(s).toString('base64');
  const runKey = (e, p, n) => `${e}/${p}/${n}`;

  function authOk(req) {
    const h = req.headers.authorization || '';
    const m = /^Basic (.+)$/.exec(h);
    if (!m) return false;
    const [user, ...rest] = Buffer.from(m[1], 'base64').toString().split(':');
    return user === 'api' && keys.includes(rest.join(':'));
  }

  // A fault with `op` hits only GraphQL requests naming that operation; one with `body`
  // answers that JSON instead of an error text.
  function takeFault(path, chunks) {
    const now = Date.now();
    faults = faults.filter((f) => (f.count === undefined || f.count > 0) &&
      (f.untilMs === undefined || now < f.untilMs));
    let op;
    if (faults.some((x) => x.op)) {
      try { op = JSON.parse(Buffer.concat(chunks).toString()).operationName; } catch { op = null; }
    }
    const f = faults.find((x) => (!x.match || path.includes(x.match)) && (!x.op || x.op === op));
    if (!f) return null;
    if (f.count !== undefined) f.count--;
    return f;
  }

  function send(res, status, body, headers = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }

  function reject(res, path, status, message, graphql) {
    state.rejected.push({ path, status, message });
    send(res, status, graphql ? { errors: [{ message }] } : { error: message });
  }

  function bucketOf(run) {
    return {
      id: run.id, name: run.name, displayName: run.displayName, description: null,
      config: run.config, sweepName: null,
      project: { id: b64(`Project:${run.project}`), name: run.project,
        entity: { id: b64(`Entity:${run.entity}`), name: run.entity } },
      historyLineCount: run.history.length,
    };
  }

  // A project exists once a run or upsertModel created it; ProjectInternalId knows no other.
  function ensureProject(e, p) {
    const k = `${e}/${p}`;
    if (!state.projects[k]) {
      state.projects[k] = { id: b64(`Project:${p}`), internalId: `pid-${e}-${p}`, name: p,
        entityName: e };
    }
    return state.projects[k];
  }

  function graphql(req, res, body) {
    const op = body.operationName || (/\b(query|mutation)\s+(\w+)/.exec(body.query || '') || [])[2];
    const v = body.variables || {};
    const last = state.requests[state.requests.length - 1];
    last.op = op;
    last.variables = v;
    const bad = checkVariables(body.query, body.operationName, v);
    if (bad) return reject(res, '/graphql', 400, bad, true);
    switch (op) {
      case 'Viewer':
        return send(res, 200, { data: { viewer: { id: b64('User:1'), entity, username: entity,
          email: null, flags: '{}', teams: { edges: [] } } } });
      case 'DefaultEntity': // the weave SDK's question when weave.init gets no entity
        return send(res, 200, { data: { viewer: { username: entity,
          defaultEntity: { name: entity } } } });
      case 'ServerFeaturesQuery':
        return send(res, 200, { data: { serverInfo: { features: [] } } });
      case 'RunResumeStatus': {
        const e = v.entity || entity;
        const run = state.runs[runKey(e, v.project || 'uncategorized', v.name)];
        const known = Object.values(state.runs).some((r) => r.entity === e &&
          r.project === (v.project || 'uncategorized'));
        if (!known) return send(res, 200, { data: { model: null } });
        const model = { id: b64(`Project:${v.project}`), name: v.project,
          entity: { id: b64(`Entity:${e}`), name: e }, bucket: null };
        if (run) {
          model.bucket = { id: run.id, name: run.name, summaryMetrics: run.summary || '{}',
            displayName: run.displayName, logLineCount: 0, historyLineCount: run.history.length,
            eventsLineCount: 0, historyTail: JSON.stringify(run.history.slice(-10)),
            eventsTail: '[]', config: run.config || '{}', tags: run.tags || [], notes: null,
            wandbConfig: JSON.stringify({ t: {} }) };
        }
        return send(res, 200, { data: { model } });
      }
      case 'UpsertBucket': {
        if (!v.name) return reject(res, '/graphql', 400, 'UpsertBucket needs name', true);
        if (v.config !== undefined && v.config !== null) {
          let cfg;
          try { cfg = JSON.parse(v.config); } catch {
            return reject(res, '/graphql', 400, 'config is not a JSON string', true);
          }
          if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) {
            return reject(res, '/graphql', 400, 'config must be a JSON object', true);
          }
          for (const [k, w] of Object.entries(cfg)) {
            if (!w || typeof w !== 'object' || !('value' in w)) {
              return reject(res, '/graphql', 400,
                `config key ${k} is not in {"key":{"value":...}} form`, true);
            }
          }
        }
        const e = v.entity || entity;
        const p = v.project || 'uncategorized';
        const k = runKey(e, p, v.name);
        let run = state.runs[k];
        const inserted = !run;
        if (!run) {
          run = state.runs[k] = { id: b64(`Run:v1:${v.name}:${p}:${e}`), name: v.name,
            entity: e, project: p, history: [], summary: null, complete: false, exitcode: null,
            upserts: 0, config: '{}', shared: {}, posts: 0 };
        }
        ensureProject(e, p);
        run.upserts++;
        for (const f of ['groupName', 'displayName', 'jobType', 'host', 'tags']) {
          if (v[f] !== undefined && v[f] !== null) run[f] = v[f];
        }
        if (v.config !== undefined && v.config !== null) run.config = v.config;
        return send(res, 200, { data: { upsertBucket: { bucket: bucketOf(run), inserted } } });
      }
      case 'ProjectInternalId': {
        const pr = state.projects[`${v.entityName}/${v.name}`];
        return send(res, 200, { data: { project: pr ? { id: pr.id, internalId: pr.internalId }
          : null } });
      }
      case 'UpsertModel': { // wandb's upsert_project: creates the project when missing
        const e = v.entity || v.entityName || entity;
        if (!v.name) return reject(res, '/graphql', 400, 'UpsertModel needs name', true);
        const inserted = !state.projects[`${e}/${v.name}`];
        const pr = ensureProject(e, v.name);
        return send(res, 200, { data: { upsertModel: { model: { id: pr.id, name: pr.name,
          entityName: e, description: v.description || null }, inserted } } });
      }
      case 'UpsertView2':
      case 'UpsertView': {
        if (!['project-view', 'runs', 'runs/draft'].includes(v.type)) {
          return reject(res, '/graphql', 400, `unknown view type ${v.type}`, true);
        }
        try { JSON.parse(v.spec); } catch {
          return reject(res, '/graphql', 400, 'view spec is not a JSON string', true);
        }
        const pk = `${v.entityName}/${v.projectName}`;
        if (!state.projects[pk]) {
          return reject(res, '/graphql', 404, `project ${pk} not found`, true);
        }
        if (v.type === 'runs') {
          // A report's run sets must point at the project's internal id.
          const spec = JSON.parse(v.spec);
          for (const b of spec.blocks || []) {
            for (const rs of (b.metadata && b.metadata.runSets) || []) {
              if (!rs.project || rs.project.id !== state.projects[pk].internalId) {
                return reject(res, '/graphql', 400,
                  `run set ${rs.id} names project id ${JSON.stringify(rs.project && rs.project.id)}`,
                  true);
              }
            }
          }
        }
        const views = state.views[pk] || (state.views[pk] = {});
        let view;
        if (v.id) {
          view = Object.values(views).find((x) => x.id === v.id);
          if (!view) return reject(res, '/graphql', 404, `no view ${v.id}`, true);
          state.viewUpdates++;
        } else {
          view = { id: b64(`View:${nextId++}`), name: v.name };
          views[`${v.type}:${v.name}:${view.id}`] = view;
          state.viewInserts++;
        }
        Object.assign(view, { type: v.type, displayName: v.displayName, spec: v.spec });
        return send(res, 200, { data: { upsertView: { view: { id: view.id, name: view.name },
          inserted: !v.id } } });
      }
      default:
        return reject(res, '/graphql', 400, `unknown operation ${op}`, true);
    }
  }

  function fileStream(req, res, path, e, p, n, body) {
    const run = state.runs[runKey(decodeURIComponent(e), decodeURIComponent(p),
      decodeURIComponent(n))];
    if (!run) return reject(res, path, 404, `run ${e}/${p}/${n} not found`);
    const shared = req.headers['x-wandb-use-async-filestream'] === 'true';
    const client = req.headers['x-wandb-async-client-id'] || '';
    if (shared && client.length !== 32) {
      return reject(res, path, 400, 'shared mode needs a 32-char X-WANDB-ASYNC-CLIENT-ID');
    }
    const keysIn = Object.keys(body);
    if (keysIn.length === 0) {
      state.heartbeats++;
      run.posts++;
      return send(res, 200, {});
    }
    const files = body.files || {};
    for (const name of Object.keys(files)) {
      if (!FILES.has(name)) return reject(res, path, 400, `unknown file ${name}`);
      const f = files[name];
      if (!Number.isInteger(f.offset) || f.offset < 0 || !Array.isArray(f.content)) {
        return reject(res, path, 400, `${name}: offset and content required`);
      }
    }
    const hist = files['wandb-history.jsonl'];
    if (hist) {
      const lines = shared ? (run.shared[client] || (run.shared[client] = [])) : run.history;
      if (hist.offset > lines.length) {
        return reject(res, path, 400,
          `history offset ${hist.offset} leaves a gap after line ${lines.length}`);
      }
      const parsed = [];
      for (let i = 0; i < hist.content.length; i++) {
        let row;
        try { row = parseExtendedJson(hist.content[i]); } catch {
          return reject(res, path, 400, `history line ${hist.offset + i} is not JSON`);
        }
        if (!row || typeof row !== 'object' || Array.isArray(row)) {
          return reject(res, path, 400, `history line ${hist.offset + i} is not an object`);
        }
        const err = checkRowValues(row, `history line ${hist.offset + i}`);
        if (err) return reject(res, path, 400, err);
        parsed.push(row);
      }
      if (!shared) {
        let prev = hist.offset > 0 ? JSON.parse(lines[hist.offset - 1])._step : -1;
        for (let i = 0; i < parsed.length; i++) {
          const s = parsed[i]._step;
          if (!Number.isInteger(s) || s <= prev) {
            return reject(res, path, 400, `history line ${hist.offset + i}: _step ${s} does not ` +
              `increase (previous ${prev})`);
          }
          prev = s;
        }
      } else if (parsed.some((r) => '_step' in r)) {
        return reject(res, path, 400, 'shared mode history lines must not carry _step');
      }
      // Rewriting a line with the same text is an idempotent retry; different text
      // at an existing line means two writers collide.
      for (let i = 0; i < hist.content.length; i++) {
        const at = hist.offset + i;
        if (at < lines.length && lines[at] !== hist.content[i]) {
          run.overwrites = (run.overwrites || 0) + 1;
        }
        lines[at] = hist.content[i];
      }
    }
    const sum = files['wandb-summary.json'];
    if (sum) {
      if (sum.offset !== 0 || sum.content.length !== 1) {
        return reject(res, path, 400, 'summary must be one line at offset 0');
      }
      try { parseExtendedJson(sum.content[0]); } catch {
        return reject(res, path, 400, 'summary is not JSON');
      }
      run.summary = sum.content[0];
    }
    if ('complete' in body || 'exitcode' in body) {
      if (body.complete !== true || !Number.isInteger(body.exitcode)) {
        return reject(res, path, 400, 'complete and exitcode go together');
      }
      run.complete = true;
      run.exitcode = body.exitcode;
    }
    run.posts++;
    return send(res, 200, {});
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= 32 << 20) chunks.push(c);
    });
    req.on('end', async () => {
      const path = req.url.split('?')[0];
      if (captureRaw) {
        raw.push(Buffer.from(`${req.method} ${req.url}\n${JSON.stringify(req.rawHeaders)}\n`));
        raw.push(...chunks);
      }
      const { authorization, ...headers } = req.headers; // never keep the key
      const rec = { method: req.method, path, auth: authOk(req), headers, t: Date.now(),
        hasAuth: authorization !== undefined };
      // file_stream bodies, so a test can compare a retry with the request it repeats.
      if (!lean && path.endsWith('/file_stream')) rec.body = Buffer.concat(chunks).toString();
      if (path.startsWith('/_standin/')) {
        if (path === '/_standin/state') return send(res, 200, state);
        if (path === '/_standin/clear' && req.method === 'POST') {
          faults = [];
          return send(res, 200, { ok: true });
        }
        if (path === '/_standin/weave') {
          const calls = weave.calls();
          return send(res, 200, { calls: calls.length, ended: calls.filter((c) => c.ended_at).length,
            batches: weave.state.batches, rejected: state.rejected.length });
        }
        if (path === '/_standin/fault' && req.method === 'POST') {
          const f = JSON.parse(Buffer.concat(chunks).toString() || '{}');
          if (f.durationMs !== undefined) f.untilMs = Date.now() + f.durationMs;
          faults.push(f);
          return send(res, 200, { ok: true });
        }
        return send(res, 404, { error: 'no such control' });
      }
      state.requests.push(rec);
      if (lean && state.requests.length > 1000) state.requests.splice(0, 500);
      if (size > 32 << 20) return reject(res, path, 413, 'request too large');
      const f = takeFault(path, chunks);
      if (f && f.drop) {
        // The connection dies with the request read and no answer: did W&B apply it?
        rec.status = 0;
        return req.socket.destroy();
      }
      if (f) {
        rec.status = f.status;
        const h = f.retryAfter !== undefined ? { 'retry-after': String(f.retryAfter) } : {};
        return send(res, f.status, f.body || { error: `injected ${f.status}` }, h);
      }
      if (!rec.auth) {
        rec.status = 401;
        return reject(res, path, 401, 'user is not logged in', path === '/graphql');
      }
      const wpath = path.startsWith('/traces/') ? path.slice('/traces'.length) : path;
      if (wpath !== '/graphql' && !wpath.startsWith('/files/')) {
        let out;
        try {
          out = await weave.handle(req, wpath, Buffer.concat(chunks));
        } catch (e) {
          rec.status = 500;
          return send(res, 500, { reason: String(e) });
        }
        if (out) {
          rec.status = out[0];
          if (out[0] >= 400) state.rejected.push({ path, status: out[0], message: out[1] });
          if (typeof out[1] === 'string') {
            res.writeHead(out[0], { 'content-type': 'application/jsonl' });
            return res.end(out[1]);
          }
          return send(res, out[0], out[1]);
        }
      }
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
      } catch {
        return reject(res, path, 400, 'body is not JSON', path === '/graphql');
      }
      if (req.method === 'POST' && path === '/graphql') return graphql(req, res, body);
      const m = /^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/.exec(path);
      if (req.method === 'POST' && m) return fileStream(req, res, path, m[1], m[2], m[3], body);
      return reject(res, path, 404, `no route ${req.method} ${path}`);
    });
  });
  trackServer(server); // a test failing before close() must not leave it listening
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    state,
    weave,
    /** Everything received so far, as one buffer (captureRaw only). */
    rawBytes: () => Buffer.concat(raw),
    fault: (f) => {
      if (f.durationMs !== undefined) f.untilMs = Date.now() + f.durationMs;
      faults.push(f);
    },
    clearFaults: () => { faults = []; },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

// `node server.mjs [KEY] [--lean] [--port P] [--workers N]`: run it by hand; prints the base
// URL. --lean keeps only call ids and a short request log (bounded memory under load);
// --workers runs N processes on one port (node:cluster), each with its own state, so a load
// test is not bound by one thread (bench/agent/weave.sh).
if (import.meta.url === `file://${process.argv[1]}`) {
  const cluster = await import('node:cluster');
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : def;
  };
  const key = args.find((a, i) => !a.startsWith('--') && !['--port', '--workers'].includes(args[i - 1]));
  const port = opt('--port', 0);
  const workers = opt('--workers', 1);
  const opts = { ...(key ? { keys: [key] } : {}), lean: args.includes('--lean'), port };
  if (workers > 1 && cluster.default.isPrimary) {
    for (let i = 0; i < workers; i++) cluster.default.fork();
    let ready = 0;
    cluster.default.on('message', (w, m) => {
      if (m && m.url && ++ready === workers) process.stdout.write(`${m.url}\n`);
    });
    process.on('SIGTERM', () => {
      for (const w of Object.values(cluster.default.workers)) w.kill();
      process.exit(0);
    });
  } else {
    const s = await startStandin(opts);
    if (cluster.default.isWorker) process.send({ url: s.url });
    else process.stdout.write(`${s.url}\n`);
  }
}

/** fn(s) against a stand-in started with opts; the stand-in is closed whatever fn did. */
export async function withStandin(opts, fn) {
  const s = await startStandin(opts);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
