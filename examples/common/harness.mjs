// What the examples' end-to-end tests (examples/*/test.mjs) share: the real noex-server
// binary on port 0, the built Rust programs, headless Chromium, the dev dependencies of
// client-wasm/js-tests, and where screenshots go.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { mkdtemp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `require` for playwright-core and ws, devDependencies of client-wasm/js-tests (npm ci there). */
export const requireDev = createRequire(path.join(root, 'client-wasm/js-tests/package.json'));

/** A workspace binary of the debug build: `$CARGO_TARGET_DIR/debug/<name>` (default target/). */
export function targetBin(name) {
  return path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug', name);
}

/**
 * Starts the real noex-server (`$NOEX_SERVER_BIN` or the debug build) with `configFile` on
 * 127.0.0.1, port 0; resolves to `{child, url, stop()}` once it prints its address. A server
 * that exits first (bad config, stale binary) rejects instead of hanging the test.
 */
export async function startServer(configFile) {
  const child = spawn(process.env.NOEX_SERVER_BIN ?? targetBin('noex-server'),
    ['--config', configFile, '--host', '127.0.0.1', '--port', '0', '--shutdown-grace-ms', '0'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await Promise.race([
    once(createInterface({ input: child.stdout }), 'line'),
    once(child, 'exit').then(([code]) => { throw new Error(`noex-server exited with ${code} before listening (stderr above)`); }),
  ]);
  assert.match(line, /^noex-server listening on ws:\/\//);
  return {
    child,
    url: line.replace('noex-server listening on ', '').trim(),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    },
  };
}

/** Headless Chromium (`$CHROMIUM` or Debian's /usr/bin/chromium) driven by playwright-core. */
export function launchChromium() {
  const { chromium } = requireDev('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
  });
}

/**
 * Collects what goes wrong in a page: uncaught exceptions (`pageerror`) and `console.error`
 * messages. Returns the array it fills; a test ends with `assert.deepEqual(errors, [])`.
 */
export function collectPageErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return errors;
}

/** Where a screenshot called `name` goes: `$NOEX_SCREENSHOT_DIR` (created) or a temp dir. */
export async function screenshotPath(name) {
  const dir = process.env.NOEX_SCREENSHOT_DIR ?? (await mkdtemp(path.join(tmpdir(), 'noex-example-')));
  await mkdir(dir, { recursive: true });
  return path.join(dir, name);
}
