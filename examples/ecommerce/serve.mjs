// A tiny static file server for the shop page: web/ at /, the wasm client package
// (client-wasm/pkg, built by client-wasm/build-pkg) at /pkg/. No dependencies.
//   node examples/ecommerce/serve.mjs [port]      (default 8002; 0 = any free port)
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.join(here, 'web');
const pkgDir = path.resolve(here, '../../client-wasm/pkg');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

/** Starts the server on 127.0.0.1:`port`; resolves to the http.Server (listening). */
export async function serve(port = 0, host = '127.0.0.1') {
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    const [base, rel] = pathname.startsWith('/pkg/')
      ? [pkgDir, pathname.slice('/pkg/'.length)]
      : [webDir, pathname === '/' ? 'index.html' : pathname.slice(1)];
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
  const server = await serve(Number(process.argv[2] ?? 8002), process.env.HOST ?? '127.0.0.1');
  const { address, port } = server.address();
  console.log(`shop page served on http://${address}:${port}/`);
}
