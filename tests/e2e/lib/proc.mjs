// tests/e2e/lib/proc.mjs - spawn kt commands, wait for log lines, stop them cleanly
// SPDX-License-Identifier: Apache-2.0
//
// Shared by the gateway and agent helpers. Whatever a test leaves running (a kt started here,
// a child it spawned itself and tracked with trackChild(), a stand-in server) is stopped by the
// after() hook below, so a failed test cannot hang the suite.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

import { liveChildren, liveServers } from './live.mjs';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The kt binary under test: $KT_BIN (relative paths are from the repo root), else build/kt. */
export function ktBin() {
    const p = process.env.KT_BIN || 'build/kt';
    return path.isAbsolute(p) ? p : path.join(REPO_ROOT, p);
}

export function ktBinExists() {
    return existsSync(ktBin());
}

/** Every kt started here that has not exited, mapped to how the after() hook stops it. */
const live = new Map();
process.on('exit', () => {
    for (const child of [...live.keys(), ...liveChildren]) {
        try {
            child.kill('SIGKILL');
        } catch {
            /* already gone */
        }
    }
});

const tempDirs = [];
process.on('exit', () => {
    if (process.env.KT_E2E_KEEP_TMP) {
        return;
    }
    for (const d of tempDirs) {
        try {
            rmSync(d, { recursive: true, force: true });
        } catch {
            /* best effort */
        }
    }
});

/** A fresh temp dir removed when the process exits (kept with KT_E2E_KEEP_TMP=1). */
export function makeTempDir(prefix = 'kt-e2e-') {
    const d = mkdtempSync(path.join(tmpdir(), prefix));
    tempDirs.push(d);
    return d;
}

let defaultStateDir = null;

/**
 * The environment kt runs with in tests: the caller's, minus anything that could send it
 * to a real provider or real W&B, plus `env`. A value of undefined in `env` removes a name.
 * KT_STATE_DIR is a temp dir of this test process unless `env` sets it, so no command
 * (`kt policy check` included) writes into the user's own state dir.
 */
export function testEnv(env = {}) {
    const out = { ...process.env };
    for (const k of ['OPENAI_API_KEY', 'OPENAI_BASE_URL', 'WANDB_API_KEY', 'WANDB_BASE_URL']) {
        delete out[k];
    }
    // Nothing exports to a real OpenTelemetry backend unless a test points it at a stand-in.
    for (const k of Object.keys(out)) {
        if (k.startsWith('OTEL_')) {
            delete out[k];
        }
    }
    if (!defaultStateDir) {
        defaultStateDir = makeTempDir('kt-e2e-state-');
    }
    out.KT_STATE_DIR = defaultStateDir;
    for (const [k, v] of Object.entries(env)) {
        if (v === undefined) {
            delete out[k];
        } else {
            out[k] = String(v);
        }
    }
    return out;
}

/** Whether `child`, which started, has not exited yet. */
function running(child) {
    return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, then SIGKILL if `child` has not exited within `ms`; resolves once it has exited. */
async function terminate(child, ms = 5000) {
    if (!running(child)) {
        return;
    }
    let t;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => {
        t = setTimeout(resolve, ms);
    })]);
    clearTimeout(t);
    if (running(child)) {
        child.kill('SIGKILL');
        await exited;
    }
}

/* A live child or a listening stand-in keeps this process, and so the runner, waiting: stop what
 * the tests left. Registered at import, this runs before the file's own after() hooks, so one of
 * those throwing (node:test then skips the rest) cannot skip it. */
after(async () => {
    /* Newest first, as the cleanups go. */
    for (const stop of [...live.values()].reverse()) {
        await stop().catch(() => {});
    }
    /* Then the children the tests spawned themselves, newest first too; a short grace, as
     * nothing checks how they exit. */
    for (const child of [...liveChildren].reverse()) {
        await terminate(child, 2000);
    }
    for (const server of liveServers) {
        server.closeAllConnections?.();
        server.close();
    }
});

/** Text that says a sanitizer found something (ASan, LSan, UBSan). */
export function sanitizerReport(text) {
    const m = text.match(/(ERROR: (AddressSanitizer|LeakSanitizer)[^\n]*|[^\n]*runtime error:[^\n]*)/);
    return m ? m[0] : null;
}

/** kt started the way spawnKt and runKt both start it: the binary under test, the test
 * environment and the repo root unless given, tracked in `live` so that the after() hook stops
 * what a failed test left running, stdout and stderr read as UTF-8. */
function spawnTracked(args, { env, cwd, stdin }) {
    const child = spawn(ktBin(), args, { env: env || testEnv(), cwd: cwd || REPO_ROOT,
        stdio: [stdin, 'pipe', 'pipe'] });
    live.set(child, () => terminate(child));
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    return child;
}

/**
 * Spawn a long-running kt command and wait for a stderr line matching `ready`.
 * Returns { child, stderr(), stdout(), ready: RegExpMatchArray, waitForLog(re, ms), stop(opts) }.
 * stop() sends SIGTERM (opts.signal), waits up to opts.timeoutMs and throws unless the exit
 * code is opts.expectCode (default 0) and no sanitizer report was printed: under ASan a leak
 * makes the exit code non-zero, and that must fail the test. Only the first stop() checks; a
 * later one (a cleanup after the test's own stop() or kill9()) just returns the exit.
 */
export async function spawnKt(args, { env, ready, timeoutMs = 30000, cwd, name = 'kt' } = {}) {
    const child = spawnTracked(args, { env, cwd, stdin: 'ignore' });
    let err = '';
    let out = '';
    let exited = null;
    const lineWaiters = [];
    let resolveExit;
    const exitPromise = new Promise((resolve) => {
        resolveExit = resolve;
    });
    child.on('exit', (code, signal) => {
        exited = { code, signal };
        live.delete(child);
        resolveExit(exited);
    });
    child.on('error', (e) => {
        /* ENOENT and friends: no 'exit' follows, so finish here. */
        err += `spawn error: ${e.message}\n`;
        if (!exited) {
            exited = { code: null, signal: null, error: e };
            live.delete(child);
            resolveExit(exited);
        }
    });
    child.stdout.on('data', (d) => {
        out += d;
    });
    child.stderr.on('data', (d) => {
        err += d;
        for (let i = lineWaiters.length - 1; i >= 0; i--) {
            const m = err.slice(lineWaiters[i].from).match(lineWaiters[i].re);
            if (m) {
                lineWaiters[i].resolve(m);
                lineWaiters.splice(i, 1);
            }
        }
    });

    function waitForLog(re, ms = 10000, from = 0) {
        const m = err.slice(from).match(re);
        if (m) {
            return Promise.resolve(m);
        }
        return new Promise((resolve, reject) => {
            const w = { re, from, resolve: (x) => { clearTimeout(t); resolve(x); } };
            const t = setTimeout(() => {
                lineWaiters.splice(lineWaiters.indexOf(w), 1);
                reject(new Error(`${name}: no log line matching ${re} within ${ms} ms; ` +
                    `stderr:\n${err.slice(-4000)}`));
            }, ms);
            lineWaiters.push(w);
        });
    }

    let readyMatch = null;
    if (ready) {
        const died = exitPromise.then((e) => {
            throw new Error(`${name} exited (code ${e.code}, signal ${e.signal}) before it was ` +
                `ready: ${ktBin()} ${args.join(' ')}\nstderr:\n${err.slice(-4000)}`);
        });
        try {
            readyMatch = await Promise.race([waitForLog(ready, timeoutMs), died]);
        } catch (e) {
            if (!exited) {
                child.kill('SIGKILL');
            }
            throw e;
        }
        died.catch(() => {});
    }

    /* Signal it and wait for its exit, once: a later call waits on the first one's outcome. */
    let stopped = null;
    function halt(signal, stopMs) {
        if (!stopped) {
            stopped = (async () => {
                if (!exited) {
                    child.kill(signal);
                }
                const timer = new Promise((resolve) => {
                    const t = setTimeout(() => resolve(null), stopMs);
                    exitPromise.then(() => clearTimeout(t));
                });
                const e = await Promise.race([exitPromise, timer]);
                if (!e) {
                    child.kill('SIGKILL');
                    await exitPromise;
                    throw new Error(`${name} did not exit within ${stopMs} ms of ${signal}; ` +
                        `stderr:\n${err.slice(-4000)}`);
                }
                return e;
            })();
        }
        return stopped;
    }

    let checked = false;
    async function stop({ signal = 'SIGTERM', expectCode = 0, timeoutMs: stopMs = 20000 } = {}) {
        if (checked) {
            /* An earlier stop() checked the exit and threw if it was wrong: a cleanup calling
             * stop() after the test stopped it itself, or killed it with kill9(), adds nothing. */
            return exitPromise;
        }
        checked = true;
        const e = await halt(signal, stopMs);
        const san = sanitizerReport(err);
        if (san) {
            throw new Error(`${name}: sanitizer report: ${san}\nstderr:\n${err.slice(-8000)}`);
        }
        if (expectCode !== null && e.code !== expectCode) {
            throw new Error(`${name} exited with code ${e.code} (signal ${e.signal}), expected ` +
                `${expectCode}; stderr:\n${err.slice(-8000)}`);
        }
        return e;
    }

    if (live.has(child)) {
        /* The after() hook stops it the way stop() does without checking anything; a stop() by
         * the test (or its cleanup) after that still checks the exit code and the sanitizer
         * report. */
        live.set(child, () => halt('SIGTERM', 20000));
    }
    return {
        child,
        pid: child.pid,
        stderr: () => err,
        stdout: () => out,
        exited: () => exited,
        ready: readyMatch,
        waitForLog,
        stop,
    };
}

/** Run a short kt command to completion: { code, signal, stdout, stderr }. */
export function runKt(args, { env, timeoutMs = 30000, cwd, input } = {}) {
    return new Promise((resolve, reject) => {
        const child = spawnTracked(args, { env, cwd,
            stdin: input === undefined ? 'ignore' : 'pipe' });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => {
            out += d;
        });
        child.stderr.on('data', (d) => {
            err += d;
        });
        const t = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`kt ${args.join(' ')} did not finish within ${timeoutMs} ms`));
        }, timeoutMs);
        child.on('error', (e) => {
            clearTimeout(t);
            live.delete(child);
            reject(e);
        });
        child.on('exit', (code, signal) => {
            clearTimeout(t);
            live.delete(child);
            resolve({ code, signal, stdout: out, stderr: err });
        });
        if (input !== undefined) {
            child.stdin.end(input);
        }
    });
}
