// The examples' static file server: an example's web/ folder at /, the wasm client package
// (client-wasm/pkg, built by client-wasm/build-pkg) at /pkg/. No dependencies.
//   node examples/common/serve.mjs <web dir> [port]      (port 0 = any free port)
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.resolve(here, '../../client-wasm/pkg');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

/**
 * Serves `webDir` at / and the wasm package at /pkg/ on `host`:`port`; resolves to the
 * listening http.Server. Paths outside the two folders are refused (403).
 */
export async function serve(webDir, port = 0, host = '127.0.0.1') {
  const web = path.resolve(webDir);
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    const [base, rel] = pathname.startsWith('/pkg/')
      ? [pkgDir, pathname.slice('/pkg/'.length)]
      : [web, pathname === '/' ? 'index.html' : pathname.slice(1)];
    const file = path.resolve(base, decodeURIComponent(rel));
    if (!file.startsWith(base + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [webDir, port] = process.argv.slice(2);
  if (!webDir) {
    console.error('usage: node examples/common/serve.mjs <web dir> [port]');
    process.exit(2);
  }
  const server = await serve(webDir, Number(port ?? 8000), process.env.HOST ?? '127.0.0.1');
  const address = server.address();
  console.log(`${webDir} served on http://${address.address}:${address.port}/`);
}
