// The shop page: one NoexClient logged in with the JWT from ?token=. Everything shown is live:
//   products      store.subscribe('products') + store.subscribe('inventory')   stock changes
//   my orders     store.subscribe('orders-of', {customer})                     new orders
//   statuses      rules.queryFacts('order:*:status') + rules.subscribe('order.*')   set by rules
//   admin         store.subscribe('order-count' | 'revenue'), restock = store.transaction (inventory + restocks; admins only)
// Every failure shows its protocol code in the banner (FORBIDDEN, VALIDATION_ERROR, ...).
import { NoexClient } from '/pkg/index.js';
import { placeOrder, pay, restock, orderStatuses } from './shop.js';

const params = new URLSearchParams(location.search);
const url = params.get('ws') ?? `ws://${location.hostname}:8082/`;
const token = params.get('token');
const $ = (id) => document.getElementById(id);
window.shop = { errors: [] };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(e) {
  const banner = $('error');
  if (!e) {
    banner.hidden = true;
    banner.textContent = '';
    return;
  }
  const text = `${e.code ?? 'ERROR'}: ${e.message}`;
  banner.textContent = text;
  banner.hidden = false;
  window.shop.errors.push(text);
}

const state = { products: [], stock: new Map(), orders: [], statuses: new Map() };

function renderProducts() {
  $('products').replaceChildren(...state.products.map((p) => {
    const tr = el('tr');
    tr.dataset.product = p.id;
    const stock = state.stock.get(p.id);
    const cell = el('td', `num stock${stock === 0 ? ' out' : ''}`, stock === undefined ? '?' : String(stock));
    tr.append(el('td', null, p.id), el('td', null, p.name), el('td', 'num', p.price.toFixed(2)), cell);
    return tr;
  }));
  for (const select of [$('order-product'), $('restock-product')]) {
    const current = select.value;
    select.replaceChildren(...state.products.map((p) => {
      const option = el('option', null, `${p.name} (${state.stock.get(p.id) ?? '?'} left)`);
      option.value = p.id;
      return option;
    }));
    if (current) select.value = current;
  }
}

function renderOrders(client) {
  $('orders').replaceChildren(...state.orders.map((o) => {
    const tr = el('tr');
    tr.dataset.order = o.id;
    const status = state.statuses.get(o.id) ?? '…';
    const action = el('td');
    if (status === 'pending') {
      const button = el('button', 'pay', 'Pay');
      button.addEventListener('click', () => pay(client, o.id).then(() => showError(null), showError));
      action.append(button);
    }
    tr.append(el('td', 'id', o.id.slice(0, 10)), el('td', null, o.productId), el('td', 'num', String(o.qty)),
      el('td', 'num', o.total.toFixed(2)), el('td', `status ${status}`, status), action);
    return tr;
  }));
}

async function main() {
  if (!token) throw Object.assign(new Error('open this page with ?token=<JWT> (examples/ecommerce/run prints links)'), { code: 'NO_TOKEN' });
  const client = await NoexClient.connect(url, { authToken: token });
  window.shop.client = client;
  const me = await client.auth.whoami();
  const admin = me.roles.includes('admin');
  $('who').textContent = `${me.userId} (${me.roles.join(', ')})`;
  client.on('disconnected', () => { $('status').textContent = 'disconnected'; });
  client.on('reconnected', () => { $('status').textContent = `connected to ${url}`; });

  await client.store.subscribe('products', undefined, (products) => {
    state.products = products;
    renderProducts();
  });
  await client.store.subscribe('inventory', undefined, (rows) => {
    state.stock = new Map(rows.map((r) => [r.productId, r.stock]));
    renderProducts();
  });

  // Statuses: the facts as they are now, then every order.status event of the rules.
  await client.rules.subscribe('order.*', (event, topic) => {
    const { orderId, status } = event.data;
    if (topic === 'order.status') {
      state.statuses.set(orderId, status);
      renderOrders(client);
    } else if (topic === 'order.payment_refused' && state.orders.some((o) => o.id === orderId)) {
      showError({ code: 'PAYMENT_REFUSED', message: `${orderId}: ${event.data.reason}` });
    }
  });
  for (const [id, status] of await orderStatuses(client)) {
    if (!state.statuses.has(id)) state.statuses.set(id, status);
  }
  await client.store.subscribe('orders-of', { customer: me.userId }, async (orders) => {
    state.orders = orders;
    renderOrders(client);
    // An order whose status event arrived before this page subscribed: read its fact.
    for (const o of orders.filter((o) => !state.statuses.has(o.id))) {
      const status = await client.rules.getFact(`order:${o.id}:status`);
      if (status && !state.statuses.has(o.id)) {
        state.statuses.set(o.id, status);
        renderOrders(client);
      }
    }
  });

  $('order').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await placeOrder(client, { customer: me.userId, productId: $('order-product').value, qty: Number($('order-qty').value) });
      showError(null);
    } catch (e) { showError(e); }
  });

  if (admin) {
    $('admin').hidden = false;
    await client.store.subscribe('order-count', undefined, (n) => { $('order-count').textContent = String(n); });
    await client.store.subscribe('revenue', undefined, (sum) => { $('revenue').textContent = Number(sum).toFixed(2); });
  }
  $('restock').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await restock(client, { productId: $('restock-product').value, qty: Number($('restock-qty').value), by: me.userId });
      showError(null);
    } catch (e) { showError(e); }
  });

  $('status').textContent = `connected to ${url}`;
  window.shop.ready = true;
}

main().catch((e) => {
  $('status').textContent = 'failed';
  showError(e);
  window.shop.error = `${e.code}: ${e.message}`;
});
