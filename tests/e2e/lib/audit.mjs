// tests/e2e/lib/audit.mjs - read what the gateway left on disk: its audit log and its files
// SPDX-License-Identifier: Apache-2.0

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { runKt } from './proc.mjs';
import { sleep } from './suite.mjs';

/**
 * `kt events list --json --limit <limit>` on stateDir, newest first, as parsed records.
 * args go after the others (filters, or another --limit).
 */
export async function auditList(stateDir, { limit = 1000, args = [] } = {}) {
    const r = await runKt(['events', 'list', '--json', '--limit', String(limit), '--state-dir',
        stateDir, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/**
 * Bounded poll of auditList(): the records once the writer's group commit has made at least n
 * of them visible.
 */
export async function waitAuditRecords(stateDir, n, { limit = 1000 } = {}) {
    let recs = [];
    for (let i = 0; i < 200; i++) {
        recs = await auditList(stateDir, { limit });
        if (recs.length >= n) {
            return recs;
        }
        await sleep(50);
    }
    assert.fail(`only ${recs.length} audit records appeared, wanted ${n}`);
    return recs;
}

/** Every file under dir, as { p, data } with all its bytes. */
export function allFiles(dir) {
    const out = [];
    for (const name of readdirSync(dir)) {
        const p = path.join(dir, name);
        const st = statSync(p);
        if (st.isDirectory()) {
            out.push(...allFiles(p));
        } else if (st.isFile()) {
            out.push({ p, data: readFileSync(p) });
        }
    }
    return out;
}
