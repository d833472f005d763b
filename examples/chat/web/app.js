// The chat page: one pane per user (default alice and bob), each with its own NoexClient
// (its own WebSocket). A pane logs in with a username and a password (the server's built-in
// identity: client.identity.login); everything shown afterwards comes from live subscriptions:
//   rooms          store.subscribe('rooms')                          room list
//   messages       store.subscribe('room-messages', {roomId})        the room's messages
//   online         rules.subscribe('presence.changed') + queryFacts  kept by the presence rules
//                  from the server's connection.login/logout/closed events
//   mentions       rules.subscribe('mention.<user>')                 emitted by the "mentions" rule
//   counter        rules.subscribe('room.counted') + rules.getFact   kept by the counter rules
import { NoexClient } from '/pkg/index.js';
import { createRoom, sendMessage, messageCount, onlineUsers } from './chat.js';

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

/** A pane: connects at once, anonymous, and shows its login form (username prefilled). */
async function mountPane(pane) {
  const root = document.getElementById('pane').content.firstElementChild.cloneNode(true);
  root.dataset.user = pane;
  document.getElementById('panes').append(root);
  const $ = (selector) => root.querySelector(selector);
  $('.user').textContent = pane;
  $('.login .username').value = pane;
  const showError = (e) => { $('.error').textContent = e ? `${e.code ?? 'ERROR'}: ${e.message}` : ''; };

  const client = await NoexClient.connect(url);
  // `user` is the logged-in username; `session` ends the subscriptions of the session.
  const state = { client, user: null, roomId: null, session: [], room: [] };
  window.chat.panes[pane] = state;
  client.on('disconnected', () => { $('.state').textContent = 'disconnected'; });
  // A reconnect logs in again with the session's token by itself (the client keeps it).
  client.on('reconnected', () => { $('.state').textContent = state.user ? 'logged in' : 'connected'; });

  const showOnline = async () => {
    if (!state.user) {
      $('.presence').textContent = 'logged out';
      return;
    }
    const online = await onlineUsers(client);
    $('.presence').textContent = online.length ? `online: ${online.join(', ')}` : 'nobody online';
  };
  state.showOnline = showOnline;

  const select = $('.room');
  const setCounter = (count) => {
    $('.counter').textContent = `${count ?? 0} messages (rule)`;
    root.dataset.count = String(count ?? 0);
  };

  async function enter(roomId) {
    for (const unsubscribe of state.room.splice(0)) unsubscribe();
    state.roomId = roomId;
    select.value = roomId;
    const list = $('.messages');
    state.room.push(await client.store.subscribe('room-messages', { roomId }, (messages) => {
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

  /** After a login: every subscription of the chat, then the default room. */
  async function startSession() {
    const user = state.user;
    state.session.push(await client.rules.subscribe('presence.changed', () => { showOnline().catch(showError); }));
    state.session.push(await client.store.subscribe('rooms', (rooms) => {
      const current = select.value;
      select.replaceChildren(...rooms.map((room) => {
        const option = el('option', null, `#${room.id} ${room.title}`);
        option.value = room.id;
        return option;
      }));
      select.value = state.roomId ?? current;
    }));
    state.session.push(await client.rules.subscribe('room.counted', (event) => {
      if (event.data.roomId === state.roomId) setCounter(event.data.count);
    }));
    state.session.push(await client.rules.subscribe(`mention.${user.toLowerCase()}`, (event) => {
      const { from, roomId, text } = event.data;
      $('.notifications').prepend(el('li', 'mention', `@${from} mentioned you in #${roomId}: ${text}`));
    }));
    // The default room, created (atomically with its system message) by the first user in.
    try {
      await createRoom(client, { id: 'general', title: 'General', user });
    } catch (e) {
      if (e.code !== 'ALREADY_EXISTS') throw e;
    }
    await enter(state.roomId ?? 'general');
    await showOnline();
  }

  $('.login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = $('.login .username').value.trim();
    const password = $('.login .password').value;
    try {
      // Starts a password session on this connection (connection.login for the presence rules).
      const session = await client.identity.login(username, password);
      state.user = session.user.username;
      $('.login .password').value = '';
      $('.user').textContent = state.user;
      $('.state').textContent = 'logged in';
      root.classList.add('in');
      showError(null);
      await startSession();
      root.dataset.ready = 'true';
    } catch (e) { showError(e); }
  });
  $('.leave').addEventListener('click', async () => {
    try {
      for (const unsubscribe of [...state.room.splice(0), ...state.session.splice(0)]) unsubscribe();
      // Ends the session: its token stops working, connection.logout for the presence rules.
      await client.identity.logout();
      state.user = null;
      delete root.dataset.ready;
      root.classList.remove('in');
      $('.state').textContent = 'connected';
      $('.notifications').replaceChildren();
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
      await sendMessage(client, { roomId: state.roomId, user: state.user, text });
      input.value = '';
      showError(null);
    } catch (e) { showError(e); }
  });
  select.addEventListener('change', () => enter(select.value).then(() => showError(null), showError));
  $('.create').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('.room-id').value.trim();
    const title = $('.room-title').value.trim();
    try {
      await createRoom(client, { id, title, user: state.user });
      $('.room-id').value = '';
      $('.room-title').value = '';
      await enter(id);
      showError(null);
    } catch (e) { showError(e); }
  });

  $('.state').textContent = 'connected';
  await showOnline();
  return state;
}

try {
  const panes = [];
  for (const user of users) panes.push(await mountPane(user));
  status.textContent = `connected to ${url} (protocol ${panes[0].client.welcome.version})`;
  window.chat.ready = true;
} catch (e) {
  status.textContent = `failed: ${e.code} ${e.message}`;
  window.chat.error = `${e.code}: ${e.message}`;
}
