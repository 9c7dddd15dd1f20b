// tests/e2e/wandb-standin/weave.mjs - the Weave trace server endpoints kt and the weave SDK use
// SPDX-License-Identifier: Apache-2.0
//
// Mounted by server.mjs under /traces (how dedicated W&B servers expose Weave) and at the
// root. As strict as the real trace server (weave/trace_server validation, and
// ../shared/docs/weave-otel.md section 6): the request wrappers refuse unknown keys with a
// FastAPI-shaped 422, ids must be lowercase canonical UUIDs or OTel hex ids, timestamps
// ISO-8601, token counts integers, an end needs a summary, any string starting with
// weave:/// must be a valid ref, bodies are capped (32 MiB, lower through maxBodyBytes), and a
// project written through /v2/{e}/{p}/calls/complete refuses the legacy endpoints with
// 400 CALLS_COMPLETE_MODE_REQUIRED. Calls are merged by id, so the same call sent twice
// stays one call; `starts`/`ends` count every write and `conflicts` counts a re-sent call
// whose content differs.
import crypto from 'node:crypto';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const OTEL_RE = /^([0-9a-f]{16}|[0-9a-f]{32})$/;
const REF_RE = /^weave:\/\/\/([^/]+)\/([^/]+)\/(object|op|table|call)\/([^/:]+)(:([A-Za-z0-9*]+))?(\/.*)?$/;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$/;
const MAX_OP_NAME = 128;
const MAX_DISPLAY_NAME = 1024;

/** The digest the trace server and its SDKs agree on (weave digest.computeDigest). */
export function weaveDigest(buf) {
  return crypto.createHash('sha256').update(buf).digest('base64url')
    .replace(/-/g, 'X').replace(/_/g, 'Y').replace(/=/g, '');
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  }
  return v;
}

class Refused extends Error {
  constructor(status, body) {
    super(JSON.stringify(body));
    this.status = status;
    this.body = body;
  }
}

const invalid = (reason) => new Refused(400, { reason });
const unprocessable = (loc, msg, type = 'value_error') =>
  new Refused(422, { detail: [{ type, loc: ['body', ...loc], msg }] });

function strictKeys(obj, allowed, loc) {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    throw unprocessable(loc, 'Input should be a valid dictionary', 'dict_type');
  }
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw unprocessable([...loc, k], 'Extra inputs are not permitted', 'extra_forbidden');
    }
  }
}

function need(obj, key, loc, check, what) {
  if (!(key in obj) || obj[key] === undefined) {
    throw unprocessable([...loc, key], 'Field required', 'missing');
  }
  if (check && !check(obj[key])) throw unprocessable([...loc, key], `Input should be ${what}`);
}

const isStr = (v) => typeof v === 'string';
const isDict = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isTime = (v) => (isStr(v) && ISO_RE.test(v)) || typeof v === 'number';
const isId = (v) => isStr(v) && (UUID_RE.test(v) || OTEL_RE.test(v));

function checkProjectId(pid, loc) {
  if (!isStr(pid) || !/^[^/]+\/[^/]+$/.test(pid)) {
    throw invalid(`Invalid project_id ${JSON.stringify(pid)} at ${loc.join('.')}`);
  }
}

/** Every string starting with weave:/// anywhere must parse as a ref. */
function checkRefs(v, depth = 0) {
  if (depth > 64) throw invalid('value nested too deeply');
  if (typeof v === 'string') {
    if (v.startsWith('weave:///') && !REF_RE.test(v)) throw invalid(`Invalid URI: ${v}`);
    return;
  }
  if (Array.isArray(v)) v.forEach((x) => checkRefs(x, depth + 1));
  else if (isDict(v)) Object.values(v).forEach((x) => checkRefs(x, depth + 1));
}

function checkUsage(summary, loc) {
  if (!isDict(summary)) throw unprocessable(loc, 'Input should be a valid dictionary');
  const usage = summary.usage;
  if (usage === undefined) return;
  if (!isDict(usage)) throw unprocessable([...loc, 'usage'], 'Input should be a valid dictionary');
  for (const [model, u] of Object.entries(usage)) {
    if (!isDict(u)) throw unprocessable([...loc, 'usage', model], 'Input should be a dictionary');
    for (const k of ['prompt_tokens', 'input_tokens', 'completion_tokens', 'output_tokens',
      'requests', 'total_tokens']) {
      if (k in u && u[k] !== null && !Number.isInteger(u[k])) {
        throw unprocessable([...loc, 'usage', model, k], 'Input should be a valid integer',
          'int_type');
      }
    }
  }
}

function checkStart(s, loc) {
  if (!isDict(s)) throw unprocessable(loc, 'Input should be a valid dictionary', 'dict_type');
  need(s, 'project_id', loc, isStr, 'a valid string');
  checkProjectId(s.project_id, loc);
  need(s, 'op_name', loc, isStr, 'a valid string');
  if (s.op_name.length > MAX_OP_NAME && !REF_RE.test(s.op_name)) {
    throw invalid(`op_name longer than ${MAX_OP_NAME}`);
  }
  need(s, 'started_at', loc, isTime, 'a valid datetime');
  need(s, 'attributes', loc, isDict, 'a valid dictionary');
  need(s, 'inputs', loc, isDict, 'a valid dictionary');
  for (const k of ['id', 'trace_id', 'parent_id']) {
    if (s[k] !== undefined && s[k] !== null && !isId(s[k])) throw invalid(`Invalid ${k}: ${s[k]}`);
  }
  if (s.display_name !== undefined && s.display_name !== null &&
    (!isStr(s.display_name) || s.display_name.length > MAX_DISPLAY_NAME)) {
    throw invalid('display_name too long');
  }
  if (s.wb_run_id !== undefined && s.wb_run_id !== null) {
    const parts = isStr(s.wb_run_id) ? s.wb_run_id.split('/') : [];
    if (parts.length !== 3 || parts.some((p) => !p)) throw invalid(`Invalid wb_run_id ${s.wb_run_id}`);
    if (`${parts[0]}/${parts[1]}` !== s.project_id) {
      throw invalid('wb_run_id must be in the call\'s project');
    }
  }
  if (s.wb_run_step !== undefined && s.wb_run_step !== null &&
    !(Number.isInteger(s.wb_run_step) && s.wb_run_step >= 0)) {
    throw unprocessable([...loc, 'wb_run_step'], 'Input should be a non-negative integer');
  }
  checkRefs(s);
}

function checkEnd(e, loc) {
  if (!isDict(e)) throw unprocessable(loc, 'Input should be a valid dictionary', 'dict_type');
  need(e, 'project_id', loc, isStr, 'a valid string');
  checkProjectId(e.project_id, loc);
  need(e, 'id', loc, isId, 'a valid id');
  need(e, 'ended_at', loc, isTime, 'a valid datetime');
  need(e, 'summary', loc, isDict, 'a valid dictionary');
  checkUsage(e.summary, [...loc, 'summary']);
  if (e.exception !== undefined && e.exception !== null && !isStr(e.exception)) {
    throw unprocessable([...loc, 'exception'], 'Input should be a valid string');
  }
  checkRefs(e);
}

const START_KEYS = ['project_id', 'id', 'op_name', 'display_name', 'trace_id', 'parent_id',
  'thread_id', 'turn_id', 'started_at', 'attributes', 'inputs', 'otel_dump', 'wb_user_id',
  'wb_run_id', 'wb_run_step'];
const END_KEYS = ['project_id', 'id', 'ended_at', 'exception', 'output', 'summary',
  'wb_run_step_end'];

function pick(o, keys) {
  // Unknown keys inside the call schemas are dropped, as the server does.
  return Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]));
}

/** lean: keep only ids and the ended flag of calls (for load: bounded memory). */
export function createWeave({ lean = false } = {}) {
  const state = {
    calls: {}, // project_id -> id -> merged call
    starts: 0,
    ends: 0,
    conflicts: 0,
    completeMode: {}, // project_id -> true
    modeRefusals: 0,
    objects: {}, // project_id -> object_id -> digest -> val
    files: {}, // project_id -> digest -> size
    tables: {},
    costs: {}, // project_id -> model -> row
    feedback: [],
    batches: 0, // accepted write requests carrying calls
    callsPerBatch: [],
    tooLarge: 0,
  };
  let maxBodyBytes = 32 << 20;

  function callsOf(pid) {
    return state.calls[pid] || (state.calls[pid] = {});
  }

  function merge(part, kind) {
    const pid = part.project_id;
    const calls = callsOf(pid);
    const id = part.id;
    if (lean) {
      const c = calls[id] || (calls[id] = { id, project_id: pid });
      if (kind === 'end') c.ended_at = part.ended_at;
      if (kind === 'start') state.starts++;
      else state.ends++;
      return;
    }
    const c = calls[id] || (calls[id] = { id, project_id: pid });
    const fields = kind === 'start' ? pick(part, START_KEYS) : pick(part, END_KEYS);
    if (c[`_${kind}`]) {
      if (JSON.stringify(c[`_${kind}`]) !== JSON.stringify(fields)) state.conflicts++;
    }
    c[`_${kind}`] = fields;
    Object.assign(c, fields);
    if (kind === 'start') state.starts++;
    else state.ends++;
  }

  function refuseLegacy(pid) {
    if (state.completeMode[pid]) {
      state.modeRefusals++;
      throw new Refused(400, {
        reason: `Project ${pid} is in calls_complete mode: write through ` +
          '/v2/{entity}/{project}/calls/complete',
        error_code: 'CALLS_COMPLETE_MODE_REQUIRED',
      });
    }
  }

  function upsertBatch(body) {
    strictKeys(body, ['batch'], []);
    if (!Array.isArray(body.batch)) throw unprocessable(['batch'], 'Input should be a valid list');
    const parts = body.batch.map((item, i) => {
      strictKeys(item, ['mode', 'req'], ['batch', i]);
      if (item.mode === 'start') {
        strictKeys(item.req, ['start'], ['batch', i, 'req']);
        checkStart(item.req.start, ['batch', i, 'req', 'start']);
        if (!item.req.start.id) throw invalid('upsert_batch start needs an id');
        return ['start', item.req.start];
      }
      if (item.mode === 'end') {
        strictKeys(item.req, ['end'], ['batch', i, 'req']);
        checkEnd(item.req.end, ['batch', i, 'req', 'end']);
        return ['end', item.req.end];
      }
      throw unprocessable(['batch', i, 'mode'], "Input should be 'start' or 'end'", 'literal_error');
    });
    for (const [, p] of parts) refuseLegacy(p.project_id);
    for (const [kind, p] of parts) merge(p, kind);
    state.batches++;
    state.callsPerBatch.push(parts.filter(([k]) => k === 'start').length);
    state.lastOkMs = Date.now();
    return {};
  }

  function callsComplete(entity, project, body) {
    const pid = `${decodeURIComponent(entity)}/${decodeURIComponent(project)}`;
    strictKeys(body, ['batch'], []);
    if (!Array.isArray(body.batch)) throw unprocessable(['batch'], 'Input should be a valid list');
    body.batch.forEach((c, i) => {
      checkStart(c, ['batch', i]);
      if (!isId(c.id) || !isId(c.trace_id)) {
        throw invalid('calls/complete items need id and trace_id');
      }
      need(c, 'ended_at', ['batch', i], isTime, 'a valid datetime');
      need(c, 'summary', ['batch', i], isDict, 'a valid dictionary');
      checkUsage(c.summary, ['batch', i, 'summary']);
      if (c.project_id !== pid) throw invalid(`item project ${c.project_id} is not ${pid}`);
    });
    state.completeMode[pid] = true;
    for (const c of body.batch) {
      merge(c, 'start');
      merge(c, 'end');
    }
    state.batches++;
    state.callsPerBatch.push(body.batch.length);
    state.lastOkMs = Date.now();
    return {};
  }

  function objCreate(body) {
    strictKeys(body, ['obj'], []);
    const o = body.obj;
    strictKeys(o, ['project_id', 'object_id', 'val', 'builtin_object_class', 'set_base_object_class',
      'wb_user_id', 'expected_digest'], ['obj']);
    need(o, 'project_id', ['obj'], isStr, 'a valid string');
    checkProjectId(o.project_id, ['obj']);
    need(o, 'object_id', ['obj'], (v) => isStr(v) && /^[A-Za-z0-9_.-]{1,128}$/.test(v),
      'a valid object id');
    need(o, 'val', ['obj']);
    checkRefs(o.val);
    const digest = weaveDigest(Buffer.from(JSON.stringify(sortKeys(o.val))));
    const objs = state.objects[o.project_id] || (state.objects[o.project_id] = {});
    (objs[o.object_id] || (objs[o.object_id] = {}))[digest] = o.val;
    return { digest };
  }

  function objRead(body) {
    strictKeys(body, ['project_id', 'object_id', 'digest', 'metadata_only'], []);
    const byId = (state.objects[body.project_id] || {})[body.object_id] || {};
    const val = byId[body.digest];
    if (val === undefined) throw new Refused(404, { reason: 'Object not found' });
    return { obj: { project_id: body.project_id, object_id: body.object_id, digest: body.digest,
      val } };
  }

  async function fileCreate(req, raw) {
    // multipart/form-data: project_id and file (parsed by undici, not by hand).
    const form = await new Response(raw, { headers: { 'content-type': req.headers['content-type'] || '' } })
      .formData().catch(() => null);
    if (!form) throw unprocessable(['file'], 'Expected multipart form data');
    const pid = form.get('project_id');
    const file = form.get('file');
    if (!isStr(pid) || !file || typeof file.arrayBuffer !== 'function') {
      throw unprocessable(['file'], 'Field required', 'missing');
    }
    checkProjectId(pid, ['project_id']);
    const buf = Buffer.from(await file.arrayBuffer());
    const digest = weaveDigest(buf);
    (state.files[pid] || (state.files[pid] = {}))[digest] = buf.length;
    return { digest };
  }

  function tableCreate(body) {
    strictKeys(body, ['table'], []);
    strictKeys(body.table, ['project_id', 'rows', 'expected_digest'], ['table']);
    checkProjectId(body.table.project_id, ['table']);
    if (!Array.isArray(body.table.rows)) throw unprocessable(['table', 'rows'], 'Input should be a list');
    const rowDigests = body.table.rows.map((r) => weaveDigest(Buffer.from(JSON.stringify(sortKeys(r)))));
    const digest = weaveDigest(Buffer.from(rowDigests.join('')));
    (state.tables[body.table.project_id] || (state.tables[body.table.project_id] = {}))[digest] =
      body.table.rows;
    return { digest, row_digests: rowDigests };
  }

  function costCreate(body) {
    strictKeys(body, ['project_id', 'costs', 'wb_user_id'], []);
    checkProjectId(body.project_id, []);
    if (!isDict(body.costs)) throw unprocessable(['costs'], 'Input should be a valid dictionary');
    const ids = [];
    for (const [model, c] of Object.entries(body.costs)) {
      strictKeys(c, ['prompt_token_cost', 'completion_token_cost', 'prompt_token_cost_unit',
        'completion_token_cost_unit', 'effective_date', 'provider_id'], ['costs', model]);
      for (const k of ['prompt_token_cost', 'completion_token_cost']) {
        if (typeof c[k] !== 'number' || !(c[k] >= 0)) {
          throw unprocessable(['costs', model, k], 'Input should be a valid number', 'float_type');
        }
      }
      const id = crypto.randomUUID();
      (state.costs[body.project_id] || (state.costs[body.project_id] = {}))[model] = { id, ...c };
      ids.push([id, model]);
    }
    return { ids };
  }

  function streamQuery(body) {
    strictKeys(body, ['project_id', 'filter', 'limit', 'offset', 'sort_by', 'query',
      'include_costs', 'include_feedback', 'columns', 'expand_columns', 'return_expanded_column_values',
      'include_storage_size', 'include_total_storage_size'], []);
    checkProjectId(body.project_id, []);
    const f = body.filter || {};
    let calls = Object.values(callsOf(body.project_id));
    if (f.wb_run_ids) calls = calls.filter((c) => f.wb_run_ids.includes(c.wb_run_id));
    if (f.op_names) calls = calls.filter((c) => f.op_names.includes(c.op_name));
    if (f.trace_ids) calls = calls.filter((c) => f.trace_ids.includes(c.trace_id));
    if (f.call_ids) calls = calls.filter((c) => f.call_ids.includes(c.id));
    calls = calls.slice(body.offset || 0, body.limit ? (body.offset || 0) + body.limit : undefined);
    return calls.map((c) => {
      const { _start, _end, ...rest } = c;
      return JSON.stringify(rest);
    }).join('\n') + (calls.length ? '\n' : '');
  }

  /** Handles one request; returns [status, body (object or JSONL string)] or null (no route). */
  async function handle(req, path, raw) {
    if (raw.length > maxBodyBytes) {
      state.tooLarge++;
      return [413, { reason: 'Request too large' }];
    }
    if (req.method === 'GET' && path === '/server_info') {
      return [200, { min_required_weave_python_version: '0.0.1' }];
    }
    if (req.method !== 'POST') return null;
    let body = {};
    const multipart = path === '/file/create' || path === '/files/create';
    if (!multipart) {
      try {
        body = JSON.parse(raw.toString() || '{}');
      } catch {
        return [422, { detail: [{ type: 'json_invalid', loc: ['body'], msg: 'JSON decode error' }] }];
      }
    }
    try {
      const v2 = /^\/v2\/([^/]+)\/([^/]+)\/calls\/complete$/.exec(path);
      if (v2) return [200, callsComplete(v2[1], v2[2], body)];
      switch (path) {
        case '/call/upsert_batch': return [200, upsertBatch(body)];
        case '/call/start': {
          strictKeys(body, ['start'], []);
          checkStart(body.start, ['start']);
          refuseLegacy(body.start.project_id);
          const start = { ...body.start };
          start.id = start.id || crypto.randomUUID();
          start.trace_id = start.trace_id || crypto.randomUUID();
          merge(start, 'start');
          return [200, { id: start.id, trace_id: start.trace_id }];
        }
        case '/call/end':
          strictKeys(body, ['end'], []);
          checkEnd(body.end, ['end']);
          refuseLegacy(body.end.project_id);
          merge(body.end, 'end');
          return [200, {}];
        case '/call/update':
          return [200, {}];
        case '/obj/create': return [200, objCreate(body)];
        case '/obj/read': return [200, objRead(body)];
        case '/file/create':
        case '/files/create': return [200, await fileCreate(req, raw)];
        case '/table/create': return [200, tableCreate(body)];
        case '/cost/create': return [200, costCreate(body)];
        case '/calls/stream_query': return [200, streamQuery(body)];
        case '/feedback/create':
          state.feedback.push(body);
          return [200, { id: crypto.randomUUID() }];
        default: return null;
      }
    } catch (e) {
      if (e instanceof Refused) return [e.status, e.body];
      throw e;
    }
  }

  return {
    state,
    handle,
    setMaxBodyBytes: (n) => { maxBodyBytes = n; },
    /** Every call of a project (or of all), without the stand-in's bookkeeping. */
    calls: (pid) => Object.entries(state.calls)
      .filter(([p]) => !pid || p === pid)
      .flatMap(([, byId]) => Object.values(byId))
      .map(({ _start, _end, ...rest }) => rest),
  };
}
