// tests/e2e/lib/live.mjs - the in-process stand-in servers that are still listening
// SPDX-License-Identifier: Apache-2.0
//
// A listening server keeps the test file's process alive just as a child does, so proc.mjs
// closes what is still here once the file's tests are done. No node:test import here: the
// stand-ins that register also run as plain scripts (bin/upstream.mjs, bench/).

export const liveServers = new Set();

/** Track `server` until it closes; the stand-ins call this for the server they start. */
export function trackServer(server) {
    liveServers.add(server);
    server.on('close', () => liveServers.delete(server));
    return server;
}
