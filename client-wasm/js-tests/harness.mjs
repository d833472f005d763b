// Test harness: starts the real noex-server binary on port 0 and opens raw WebSockets to it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import WebSocket from 'ws';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target');

/**
 * Starts `noex-server` (or the binary `bin`) with extra flags on `port` (default 0: a free
 * one); resolves to { url, port, stop() }.
 */
export async function startServer(args = [], { config, port = 0, bin: binary } = {}) {
  const bin = binary ?? process.env.NOEX_SERVER_BIN ?? path.join(targetDir, 'debug', 'noex-server');
  const flags = ['--host', '127.0.0.1', '--port', String(port), '--shutdown-grace-ms', '0', ...args];
  if (config) {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'noex-')), 'config.json');
    writeFileSync(file, JSON.stringify(config));
    flags.push('--config', file);
  }
  const child = spawn(bin, flags, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const [line] = await once(lines, 'line');
  const url = line.replace('noex-server listening on ', '').trim();
  return {
    url,
    port: Number(new URL(url).port),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** A raw protocol connection with an inbox, as a TypeScript client of the original would use. */
export async function connect(url, options = {}) {
  const ws = new WebSocket(url, options);
  const inbox = [];
  const waiters = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    const waiter = waiters.shift();
    if (waiter) waiter(msg); else inbox.push(msg);
  });
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await once(ws, 'open');
  const next = () => inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r));
  const welcome = await next();
  return {
    ws,
    welcome,
    closed,
    next,
    send: (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)),
    async request(obj) { this.send(obj); return next(); },
    close: () => ws.close(),
  };
}

/** Values pushed by a callback, awaited in order. */
export function inbox() {
  const items = [];
  const waiters = [];
  return {
    push: (value) => {
      const waiter = waiters.shift();
      if (waiter) waiter(value); else items.push(value);
    },
    next: () => (items.length ? Promise.resolve(items.shift()) : new Promise((r) => waiters.push(r))),
    pending: () => items.length,
  };
}
