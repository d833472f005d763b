// End-to-end test of the chat example: the real noex-server with examples/chat/noex.json (the
// built-in identity on), the demo users created by the chat-setup program, the page served on
// localhost, headless Chromium (playwright-core) with two panes = two wasm clients logging in
// with passwords, and a Node client checking what the rules and transactions did.
//   node --test examples/chat/test.mjs     (after client-wasm/build-pkg,
//                                           cargo build -p noex-server -p noex-examples,
//                                           npm ci in client-wasm/js-tests)
// The screenshot goes to $NOEX_SCREENSHOT_DIR (default: a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NoexClient } from '../../client-wasm/pkg/index.js';
import { serve } from '../common/serve.mjs';
import { requireDev, startServer, launchChromium, screenshotPath, collectPageErrors, targetBin } from '../common/harness.mjs';
import { createRoom, sendMessage, messageCount, onlineUsers } from './web/chat.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WebSocket = requireDev('ws');

let server;
let web;
let browser;
let node;
let wsUrl;

before(async () => {
  server = await startServer(path.join(here, 'noex.json'));
  wsUrl = server.url;
  // The one-time setup examples/chat/run does: the member role and the demo users.
  const { stdout } = await promisify(execFile)(targetBin('chat-setup'),
    ['--url', wsUrl, '--config', path.join(here, 'noex.json'), '--users', path.join(here, 'users.json')]);
  assert.match(stdout, /chat user alice +password alice-password/);
  assert.match(stdout, /chat setup done: 4 users/);
  web = await serve(path.join(here, 'web'), 0);
  browser = await launchChromium();
  // The Node side is carol (a member like the panes), so she is online throughout.
  node = await NoexClient.connect(wsUrl, { WebSocket });
  assert.equal((await node.identity.login('carol', 'carol-password')).user.username, 'carol');
});

after(async () => {
  node?.disconnect();
  await browser?.close();
  await new Promise((resolve) => (web ? web.close(resolve) : resolve()));
  await server?.stop();
});

const texts = (page, user, selector) =>
  page.$$eval(`[data-user="${user}"] ${selector}`, (nodes) => nodes.map((n) => n.textContent));

/** Waits until the pane's elements matching `selector` have exactly these texts. */
async function waitForTexts(page, user, selector, expected) {
  await page.waitForFunction(([sel, want]) => {
    const got = [...document.querySelectorAll(sel)].map((n) => n.textContent);
    return JSON.stringify(got) === JSON.stringify(want);
  }, [`[data-user="${user}"] ${selector}`, expected], { timeout: 10000 }).catch(async (e) => {
    const shown = await page.$$eval(".error", (nodes) => nodes.map((n) => n.textContent).join(" | "));
    throw new Error(`${user} ${selector}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(await texts(page, user, selector))}; errors shown: ${shown} (${e.message})`);
  });
}

async function logIn(page, user, password) {
  await page.fill(`[data-user="${user}"] .login .username`, user);
  await page.fill(`[data-user="${user}"] .login .password`, password);
  await page.click(`[data-user="${user}"] .login button`);
}

async function send(page, user, text) {
  await page.fill(`[data-user="${user}"] .send .compose`, text);
  await page.click(`[data-user="${user}"] .send button`);
}

test('two users log in with passwords and chat live; a wrong password shows an error; rules count messages and notify mentions; rooms are created atomically; presence follows logins and sockets', async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  const errors = collectPageErrors(page);
  await page.goto(`http://127.0.0.1:${web.address().port}/?ws=${encodeURIComponent(wsUrl)}`);
  await page.waitForFunction(() => window.chat?.ready || window.chat?.error);
  assert.equal(await page.evaluate(() => window.chat.error), undefined);
  for (const user of ['alice', 'bob']) await waitForTexts(page, user, '.presence', ['logged out']);

  // A wrong password: the pane shows the server's answer and stays logged out.
  await logIn(page, 'alice', 'not-her-password');
  await waitForTexts(page, 'alice', '.error', ['UNAUTHORIZED: Invalid credentials']);
  assert.equal(await page.isVisible('[data-user="alice"] .login'), true);
  assert.equal(await page.isVisible('[data-user="alice"] .chat'), false);
  await waitForTexts(page, 'alice', '.presence', ['logged out']);

  // Alice logs in first and creates #general in one transaction: the room and its system message.
  await logIn(page, 'alice', 'alice-password');
  await page.waitForSelector('[data-user="alice"][data-ready]');
  await logIn(page, 'bob', 'bob-password');
  await page.waitForSelector('[data-user="bob"][data-ready]');
  assert.equal(await page.isVisible('[data-user="alice"] .login'), false);
  for (const user of ['alice', 'bob']) {
    await waitForTexts(page, user, '.error', ['']);
    await waitForTexts(page, user, '.state', ['logged in']);
    await waitForTexts(page, user, '.messages li', ['alice created the room "General"']);
    await waitForTexts(page, user, '.presence', ['online: alice, bob, carol']);
    await waitForTexts(page, user, '.counter', ['0 messages (rule)']);
  }

  // Alice types in her pane; the message reaches Bob's pane through his subscription.
  await send(page, 'alice', 'hello @bob, welcome');
  await waitForTexts(page, 'bob', '.messages li', ['alice created the room "General"', 'alicehello @bob, welcome']);
  await waitForTexts(page, 'alice', '.messages li', ['alice created the room "General"', 'alicehello @bob, welcome']);
  // The "mentions" rule emitted mention.bob; only Bob's pane shows it.
  await waitForTexts(page, 'bob', '.notifications li', ['@alice mentioned you in #general: hello @bob, welcome']);
  // The counter rules set the fact room:general:messages and announced it (room.counted) to both panes.
  await waitForTexts(page, 'bob', '.counter', ['1 messages (rule)']);
  await waitForTexts(page, 'alice', '.counter', ['1 messages (rule)']);
  assert.equal(await messageCount(node, 'general'), 1);
  assert.equal(await node.rules.getFact('room:general:lastFrom'), 'alice');

  // Bob answers; Alice sees it; nobody mentioned, so no notification for Alice.
  await send(page, 'bob', 'hi alice');
  await waitForTexts(page, 'alice', '.messages li',
    ['alice created the room "General"', 'alicehello @bob, welcome', 'bobhi alice']);
  await waitForTexts(page, 'alice', '.counter', ['2 messages (rule)']);
  assert.equal(await node.rules.getFact('room:general:lastFrom'), 'bob');
  assert.deepEqual(await texts(page, 'alice', '.notifications li'), []);

  // A message from a Node client (same chat.js, same package) shows up in both panes.
  await sendMessage(node, { roomId: 'general', user: 'carol', text: '@alice @bob standup in 5' });
  await waitForTexts(page, 'alice', '.notifications li', ['@carol mentioned you in #general: @alice @bob standup in 5']);
  await waitForTexts(page, 'bob', '.notifications li', [
    '@carol mentioned you in #general: @alice @bob standup in 5',
    '@alice mentioned you in #general: hello @bob, welcome',
  ]);
  await waitForTexts(page, 'bob', '.counter', ['3 messages (rule)']);
  assert.equal(await messageCount(node, 'general'), 3);

  // Room creation is atomic: the system message is inserted first, then the room; a taken id
  // fails the second op, so the first one must be rolled back (no second system message).
  await assert.rejects(createRoom(node, { id: 'general', title: 'Again', user: 'carol' }), { code: 'ALREADY_EXISTS' });
  const systemMessages = await node.store.bucket('messages').where({ roomId: 'general', kind: 'system' });
  assert.equal(systemMessages.length, 1);
  // ...and an invalid room (bad id) fails the room insert and rolls back its message too.
  await assert.rejects(createRoom(node, { id: 'Bad Id!', title: 'x', user: 'carol' }), { code: 'VALIDATION_ERROR' });
  assert.equal(await node.store.bucket('messages').count({ roomId: 'Bad Id!' }), 0);

  // Members cannot forge presence or emit other topics (permissions in noex.json).
  await assert.rejects(node.rules.setFact('online:mallory:conn-1', true), { code: 'FORBIDDEN' });
  await assert.rejects(node.rules.emit('presence.changed', { userId: 'mallory' }), { code: 'FORBIDDEN' });
  await assert.rejects(node.store.defineBucket('x', { key: 'id', schema: { id: { type: 'string' } } }), { code: 'FORBIDDEN' });
  // ...nor rename themselves in the members directory, nor read the identity's users.
  await assert.rejects(node.store.bucket('members').insert({ id: 'x', name: 'mallory' }), { code: 'FORBIDDEN' });
  await assert.rejects(node.identity.listUsers(), { code: 'FORBIDDEN' });

  // Presence from the server's connection events: Bob logs out (his pane shows the login form
  // again), Alice's pane sees it; he logs in again with his password.
  await page.click('[data-user="bob"] .leave');
  await waitForTexts(page, 'alice', '.presence', ['online: alice, carol']);
  await waitForTexts(page, 'bob', '.presence', ['logged out']);
  assert.equal(await page.isVisible('[data-user="bob"] .login'), true);
  await logIn(page, 'bob', 'bob-password');
  await page.waitForSelector('[data-user="bob"][data-ready]');
  await waitForTexts(page, 'alice', '.presence', ['online: alice, bob, carol']);
  await waitForTexts(page, 'bob', '.presence', ['online: alice, bob, carol']);
  await waitForTexts(page, 'bob', '.messages li',
    ['alice created the room "General"', 'alicehello @bob, welcome', 'bobhi alice', 'carol@alice @bob standup in 5']);

  // A client that vanishes without logging out or closing (a crashed browser): its socket is
  // destroyed, the server emits connection.closed, the rule drops its presence.
  const dave = new WebSocket(wsUrl);
  await once(dave, 'open');
  const answers = [];
  dave.on('message', (raw) => { const m = JSON.parse(raw); if (m.type === 'result' || m.type === 'error') answers.push(m); });
  dave.send(JSON.stringify({ id: 1, type: 'identity.login', username: 'dave', password: 'dave-password' }));
  await waitForTexts(page, 'alice', '.presence', ['online: alice, bob, carol, dave']);
  assert.deepEqual(answers.map((a) => a.type), ['result']);
  dave.terminate();
  await waitForTexts(page, 'alice', '.presence', ['online: alice, bob, carol']);
  assert.deepEqual(await onlineUsers(node), ['alice', 'bob', 'carol']);

  // Bob creates a room from his pane: it appears in Alice's room list; Bob moves there.
  await page.fill('[data-user="bob"] .create .room-id', 'random');
  await page.fill('[data-user="bob"] .create .room-title', 'Random');
  await page.click('[data-user="bob"] .create button');
  await waitForTexts(page, 'bob', '.messages li', ['bob created the room "Random"']);
  await waitForTexts(page, 'alice', '.room option', ['#general General', '#random Random']);
  // Go back so the screenshot shows the conversation in both panes.
  await page.selectOption('[data-user="bob"] .room', 'general');
  await waitForTexts(page, 'bob', '.counter', ['3 messages (rule)']);

  const shot = await screenshotPath('chat-two-panes.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  assert.deepEqual(errors, []);
  await page.close();
});
