// The shop's data operations on top of the noex wasm client, used by the page (app.js) and
// by the Node test with the same package. Every function takes a connected NoexClient
// logged in with a JWT; the rules and permissions of noex.json do the rest.

/**
 * Places an order as ONE transaction: the inventory's new stock, the order and its log
 * entry. Nothing is written when any part fails:
 * - short stock: inventory.stock has `min: 0`, so the update fails validation
 *   (VALIDATION_ERROR, field `stock`);
 * - a concurrent order computed from the same stock reading: the log entry's key is
 *   `<product>@<inventory _version read>`, so the later of the two fails with
 *   ALREADY_EXISTS and is recomputed from a fresh reading (up to `attempts` times).
 * The committed insert reaches the rules (store bridge), which set the status fact
 * `order:<id>:status` = pending and start the payment window. Resolves to the order record.
 */
export async function placeOrder(client, { customer, productId, qty, attempts = 5 }) {
  const product = await client.store.bucket('products').get(productId);
  if (!product) throw Object.assign(new Error(`No product "${productId}"`), { code: 'NOT_FOUND' });
  const id = `o-${crypto.randomUUID()}`;
  for (let attempt = 1; ; attempt++) {
    const stock = await client.store.bucket('inventory').get(productId);
    if (!stock) throw Object.assign(new Error(`No stock record for "${productId}"`), { code: 'NOT_FOUND' });
    const after = stock.stock - qty;
    const at = Date.now();
    try {
      const { results } = await client.store.transaction([
        { op: 'update', bucket: 'inventory', key: productId, data: { stock: after } },
        { op: 'insert', bucket: 'orders', data: {
          id, customer, productId, qty, unitPrice: product.price, total: product.price * qty, placedAt: at } },
        { op: 'insert', bucket: 'order_log', data: {
          id: `${productId}@${stock._version}`, orderId: id, customer, productId, change: -qty,
          stockBefore: stock.stock, stockAfter: after, at } },
      ]);
      return results[1].data;
    } catch (e) {
      if (e.code === 'ALREADY_EXISTS' && e.details?.bucket === 'order_log' && attempt < attempts) continue;
      throw e;
    }
  }
}

/** Pays an order: emits `payment.received`; the rules mark a pending order paid. */
export async function pay(client, orderId) {
  await client.rules.emit('payment.received', { orderId });
}

/**
 * Adds stock in one transaction: the inventory update and a `restocks` record keyed
 * `<product>@<version read>` (two restocks from one reading cannot both commit). Customers
 * may update the inventory (their orders do) but not insert into `restocks`, so the server
 * refuses the whole transaction for them (FORBIDDEN `store.insert on restocks`).
 */
export async function restock(client, { productId, qty, by }) {
  const stock = await client.store.bucket('inventory').get(productId);
  if (!stock) throw Object.assign(new Error(`No stock record for "${productId}"`), { code: 'NOT_FOUND' });
  const after = stock.stock + qty;
  const { results } = await client.store.transaction([
    { op: 'update', bucket: 'inventory', key: productId, data: { stock: after } },
    { op: 'insert', bucket: 'restocks', data: {
      id: `${productId}@${stock._version}`, productId, qty, by, stockBefore: stock.stock, stockAfter: after, at: Date.now() } },
  ]);
  return results[0].data;
}

/** The status the rules keep for an order (`pending`, `paid`, `cancelled`) or null. */
export async function orderStatus(client, orderId) {
  return client.rules.getFact(`order:${orderId}:status`);
}

/** Every order status the rules keep: Map orderId -> status. */
export async function orderStatuses(client) {
  const facts = await client.rules.queryFacts('order:*:status');
  return new Map(facts.map(({ key, value }) => [key.split(':')[1], value]));
}
