// tests/e2e/lib/live.mjs - stand-in servers still listening, children still running
// SPDX-License-Identifier: Apache-2.0
//
// A listening server or a running child keeps the test file's process alive, so proc.mjs closes
// or stops what is still here once the file's tests are done. No node:test import here: the
// stand-ins that register also run as plain scripts (bin/upstream.mjs, bench/).

export const liveServers = new Set();

/** Track `server` until it closes; the stand-ins call this for the server they start. */
export function trackServer(server) {
    liveServers.add(server);
    server.on('close', () => liveServers.delete(server));
    return server;
}

/** Every child registered with trackChild() that has not exited. */
export const liveChildren = new Set();

/**
 * Track `child`, spawned by a test itself rather than through proc.mjs, until it exits. With
 * `killAfterMs` it is SIGKILLed if still running then, so that no such child can run forever
 * whatever the test awaits. A child that never started (no pid: its 'error' follows) has nothing
 * to stop; no 'error' listener is added, so a spawn error the caller does not handle still throws.
 */
export function trackChild(child, { killAfterMs } = {}) {
    if (child.pid === undefined) {
        return child;
    }
    liveChildren.add(child);
    let timer = null;
    if (killAfterMs !== undefined) {
        /* unref'd: the running child holds the process anyway; the limit alone must never. */
        timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs).unref();
    }
    child.once('exit', () => {
        clearTimeout(timer);
        liveChildren.delete(child);
    });
    return child;
}
