// The chat page: one pane per user (default alice and bob), each with its own NoexClient
// (its own WebSocket). Everything shown comes from live subscriptions:
//   rooms          store.subscribe('rooms')                          room list
//   messages       store.subscribe('room-messages', {roomId})        the room's messages
//   online         rules.subscribe('presence.changed') + queryFacts  kept by the presence rules
//                  from the server's connection.login/logout/closed events
//   mentions       rules.subscribe('mention.<user>')                 emitted by the "mentions" rule
//   counter        rules.subscribe('room.counted') + rules.getFact   kept by the counter rules
import { NoexClient } from '/pkg/index.js';
import { createRoom, sendMessage, messageCount, onlineUsers, demoToken } from './chat.js';

const params = new URLSearchParams(location.search);
const url = params.get('ws') ?? `ws://${location.hostname}:8080/`;
const users = (params.get('users') ?? 'alice,bob').split(',').map((u) => u.trim()).filter(Boolean);
const status = document.getElementById('status');
window.chat = { panes: {} };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function mountPane(user) {
  const root = document.getElementById('pane').content.firstElementChild.cloneNode(true);
  root.dataset.user = user;
  document.getElementById('panes').append(root);
  const $ = (selector) => root.querySelector(selector);
  $('.user').textContent = user;
  const showError = (e) => { $('.error').textContent = e ? `${e.code ?? 'ERROR'}: ${e.message}` : ''; };

  // authToken: the client logs in now and again after every reconnect, and each login is a
  // connection.login event for the presence rules.
  const client = await NoexClient.connect(url, { authToken: demoToken(user) });
  const state = { client, roomId: null, loggedIn: true, unsubscribe: [] };
  window.chat.panes[user] = state;
  client.on('disconnected', () => { $('.state').textContent = 'disconnected'; });
  client.on('reconnected', () => { $('.state').textContent = 'connected'; });

  const showOnline = async () => {
    if (!state.loggedIn) {
      $('.presence').textContent = 'logged out';
      return;
    }
    const online = await onlineUsers(client);
    $('.presence').textContent = online.length ? `online: ${online.join(', ')}` : 'nobody online';
  };
  state.showOnline = showOnline;
  await client.rules.subscribe('presence.changed', () => { showOnline().catch(showError); });

  const select = $('.room');
  await client.store.subscribe('rooms', (rooms) => {
    const current = select.value;
    select.replaceChildren(...rooms.map((room) => {
      const option = el('option', null, `#${room.id} ${room.title}`);
      option.value = room.id;
      return option;
    }));
    select.value = state.roomId ?? current;
  });

  const setCounter = (count) => {
    $('.counter').textContent = `${count ?? 0} messages (rule)`;
    root.dataset.count = String(count ?? 0);
  };
  await client.rules.subscribe('room.counted', (event) => {
    if (event.data.roomId === state.roomId) setCounter(event.data.count);
  });
  await client.rules.subscribe(`mention.${user.toLowerCase()}`, (event) => {
    const { from, roomId, text } = event.data;
    $('.notifications').prepend(el('li', 'mention', `@${from} mentioned you in #${roomId}: ${text}`));
  });

  async function enter(roomId) {
    for (const unsubscribe of state.unsubscribe.splice(0)) await unsubscribe();
    state.roomId = roomId;
    select.value = roomId;
    const list = $('.messages');
    state.unsubscribe.push(await client.store.subscribe('room-messages', { roomId }, (messages) => {
      list.replaceChildren(...messages.map((m) => {
        const li = el('li', m.kind);
        if (m.kind === 'user') li.append(el('span', 'from', m.from));
        li.append(el('span', 'text', m.text));
        return li;
      }));
      list.scrollTop = list.scrollHeight;
    }));
    setCounter(await messageCount(client, roomId));
  }
  state.enter = enter;

  select.addEventListener('change', () => enter(select.value).then(() => showError(null), showError));
  $('.leave').addEventListener('click', async () => {
    try {
      // Log out / log in on the same socket: connection.logout / connection.login events.
      if (state.loggedIn) {
        await client.auth.logout();
        state.loggedIn = false;
        $('.leave').textContent = 'Log in';
      } else {
        await client.auth.login(demoToken(user));
        state.loggedIn = true;
        $('.leave').textContent = 'Log out';
      }
      await showOnline();
      showError(null);
    } catch (e) { showError(e); }
  });
  $('.send').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('.send .compose');
    const text = input.value.trim();
    if (!text) return;
    try {
      await sendMessage(client, { roomId: state.roomId, user, text });
      input.value = '';
      showError(null);
    } catch (e) { showError(e); }
  });
  $('.create').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('.room-id').value.trim();
    const title = $('.room-title').value.trim();
    try {
      await createRoom(client, { id, title, user });
      $('.room-id').value = '';
      $('.room-title').value = '';
      await enter(id);
      showError(null);
    } catch (e) { showError(e); }
  });

  $('.state').textContent = 'connected';
  return state;
}

try {
  const panes = [];
  for (const user of users) panes.push(await mountPane(user));
  // The default room, created (atomically with its system message) by the first pane if missing.
  try {
    await createRoom(panes[0].client, { id: 'general', title: 'General', user: users[0] });
  } catch (e) {
    if (e.code !== 'ALREADY_EXISTS') throw e;
  }
  for (const pane of panes) await pane.enter('general');
  for (const pane of panes) await pane.showOnline();
  status.textContent = `connected to ${url} (protocol ${panes[0].client.welcome.version})`;
  window.chat.ready = true;
} catch (e) {
  status.textContent = `failed: ${e.code} ${e.message}`;
  window.chat.error = `${e.code}: ${e.message}`;
}
