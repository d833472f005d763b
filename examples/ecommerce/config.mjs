// noex.json with another payment window (the `within` of the payment-timeout rule).
//   node examples/ecommerce/config.mjs 2s > /tmp/shop.json     (ms number or "2s", "5m")
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The parsed noex.json with the payment-timeout rule's window set to `within`. */
export function configWithPaymentWindow(within) {
  const config = JSON.parse(readFileSync(path.join(here, 'noex.json'), 'utf8'));
  const rule = config.rules.rules.find((r) => r.id === 'payment-timeout');
  rule.trigger.pattern.within = /^\d+$/.test(String(within)) ? Number(within) : within;
  return config;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const within = process.argv[2];
  if (!within) {
    console.error('usage: node config.mjs <window: ms or "20s">');
    process.exit(2);
  }
  console.log(JSON.stringify(configWithPaymentWindow(within), null, 2));
}
