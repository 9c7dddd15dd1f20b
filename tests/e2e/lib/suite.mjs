// tests/e2e/lib/suite.mjs - the stand-in upstream, gateway and cleanups a test file shares
// SPDX-License-Identifier: Apache-2.0
import { before, after } from 'node:test';

import { startGateway } from './gateway.mjs';
import { startUpstream } from './upstream.mjs';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs every cleanup in `cleanups`, newest first, whatever the ones before it did (or something
 * stays running), then `last` if given; then throws what failed: the one error, or an
 * AggregateError whose message lists each (the TAP reporter, the default off a terminal as in
 * CI, prints the message alone).
 */
export async function runCleanups(cleanups, last = null) {
    const errors = [];
    for (const c of [...cleanups].reverse()) {
        try {
            await c();
        } catch (e) {
            errors.push(e);
        }
    }
    await last?.();
    if (errors.length > 1) {
        throw new AggregateError(errors, `${errors.length} cleanups failed:\n` +
            errors.map((e) => e.message).join('\n'));
    }
    if (errors.length === 1) {
        throw errors[0];
    }
}

/**
 * Starts one stand-in upstream before the file's tests. After them, runs every function the
 * tests pushed onto `suite.cleanups` (newest first), closes the stand-in, then fails the file if
 * a cleanup threw: a gateway that exits non-zero or leaks at stop must not go unnoticed. A
 * stop() of what the test already stopped itself returns without checking again, so only real
 * failures throw. `suite.up` is the stand-in once the tests run.
 */
export function upstreamSuite(opts = {}) {
    const suite = { up: null, cleanups: [] };
    before(async () => {
        suite.up = await startUpstream(opts);
    });
    after(() => runCleanups(suite.cleanups, () => suite.up?.close()));
    return suite;
}

/**
 * One stand-in upstream (opts as startUpstream's) and one gateway on the page's config in front
 * of it, for all of a file's tests: `suite.up` and `suite.gw` once the tests run. After them the
 * gateway stops (asserting a clean exit), then the stand-in closes.
 */
export function gatewaySuite(opts = {}) {
    const suite = { up: null, gw: null };
    before(async () => {
        suite.up = await startUpstream(opts);
        suite.gw = await startGateway({ upstream: suite.up });
    });
    after(async () => {
        try {
            if (suite.gw) {
                await suite.gw.stop();
            }
        } finally {
            await suite.up?.close();
        }
    });
    return suite;
}
