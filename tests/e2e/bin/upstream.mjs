#!/usr/bin/env node
// tests/e2e/bin/upstream.mjs - run the OpenAI stand-in by itself (demo, manual testing)
// SPDX-License-Identifier: Apache-2.0
//
//   node tests/e2e/bin/upstream.mjs [--port N] [--echo]
//
// Prints one line "upstream listening url=http://127.0.0.1:PORT/v1" on stdout once it
// accepts connections, then serves until SIGTERM or SIGINT. --echo makes each answer quote
// the last user message as the stand-in received it, so what the gateway changed (redacted
// PII, for one) is visible in the reply.

import { startUpstream, contentText } from '../lib/upstream.mjs';

function lastUser(rec) {
    const msgs = (rec.body && rec.body.messages) || [];
    for (let i = msgs.length - 1; i >= 0; i--) {
        if (msgs[i] && msgs[i].role === 'user') {
            return contentText(msgs[i].content);
        }
    }
    return '';
}

const args = process.argv.slice(2);
let port = 0;
let echo = false;
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port' && i + 1 < args.length) {
        port = Number(args[++i]);
    } else if (args[i] === '--echo') {
        echo = true;
    } else {
        process.stderr.write(`usage: upstream.mjs [--port N] [--echo]\n`);
        process.exit(2);
    }
}

const up = await startUpstream({
    port,
    behave: echo ? { text: (rec) => `(stand-in model) I received: "${lastUser(rec)}"` } : {},
});
process.stdout.write(`upstream listening url=${up.baseURL}\n`);

async function shutdown() {
    await up.close();
    process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
