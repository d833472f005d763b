// Mints an HS256 JWT for the e-commerce example with the secret of noex.json (node:crypto,
// no dependencies). Demo only: a real shop gets its tokens from its login service.
//   node examples/ecommerce/token.mjs <sub> [roles=customer] [ttlSeconds=86400]
//   node examples/ecommerce/token.mjs ada admin
//   node examples/ecommerce/token.mjs carol customer -60      (already expired)
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The HS256 secret configured in noex.json (auth.jwt.secret). */
export const secret = JSON.parse(readFileSync(path.join(here, 'noex.json'), 'utf8')).auth.jwt.secret;

const b64url = (data) => Buffer.from(data).toString('base64url');

/**
 * A signed JWT `{sub, roles, iat, exp}`; `ttlSeconds` may be negative (an expired token).
 * `key` defaults to the configured secret (pass another one to get a token the server rejects).
 */
export function mint({ sub, roles = ['customer'], ttlSeconds = 86400, key = secret }) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, roles, iat: now, exp: now + ttlSeconds }));
  const signature = createHmac('sha256', key).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [sub, roles = 'customer', ttl = '86400'] = process.argv.slice(2);
  if (!sub) {
    console.error('usage: node token.mjs <sub> [roles=customer,...] [ttlSeconds=86400]');
    process.exit(2);
  }
  console.log(mint({ sub, roles: roles.split(',').filter(Boolean), ttlSeconds: Number(ttl) }));
}
