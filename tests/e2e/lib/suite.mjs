// tests/e2e/lib/suite.mjs - the stand-in upstream and the cleanups a test file shares
// SPDX-License-Identifier: Apache-2.0
import { before, after } from 'node:test';

import { startUpstream } from './upstream.mjs';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts one stand-in upstream before the file's tests. After them, runs every function the
 * tests pushed onto `suite.cleanups` (newest first; one that fails was already stopped by its
 * test) and closes the stand-in. `suite.up` is the stand-in once the tests run.
 */
export function upstreamSuite(opts = {}) {
    const suite = { up: null, cleanups: [] };
    before(async () => {
        suite.up = await startUpstream(opts);
    });
    after(async () => {
        for (const c of suite.cleanups.reverse()) {
            try {
                await c();
            } catch {
                /* already stopped by the test */
            }
        }
        await suite.up?.close();
    });
    return suite;
}
