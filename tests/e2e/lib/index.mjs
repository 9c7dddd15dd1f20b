// tests/e2e/lib/index.mjs - the e2e harness: import everything from here
// SPDX-License-Identifier: Apache-2.0
//
//   import { startUpstream, startGateway, pageConfig, client } from './lib/index.mjs';
//
// upstream.mjs  startUpstream(): the OpenAI stand-in (records requests, scripted replies)
// gateway.mjs   startGateway(), pageConfig(), client(), rawRequest(), chatBody(), TEST_SECRET
// proc.mjs      spawnKt()/runKt(): start kt commands, wait for log lines, stop with exit 0
// audit.mjs     auditList(), waitAuditRecords(), allFiles(): the audit log and files on disk
// live.mjs      trackChild(): a child a test spawns itself, stopped after the file's tests
//
// startAgent() belongs in agent.mjs beside these files (same shape as startGateway: spawn
// `kt agent run` through spawnKt() with a temp state dir, wait for its ready line, stop()
// asserting exit 0); export it from here with one line:
//   export * from './agent.mjs';

export * from './upstream.mjs';
export * from './gateway.mjs';
export * from './proc.mjs';
export * from './agent.mjs';
export * from './suite.mjs';
export * from './audit.mjs';
export * from './live.mjs';
