// The chat page: one pane per user (default alice and bob), each with its own NoexClient
// (its own WebSocket). Everything shown comes from live subscriptions:
//   rooms          store.subscribe('rooms')                          room list
//   messages       store.subscribe('room-messages', {roomId})        the room's messages
//   presence       store.subscribe('room-presence', {roomId})        who is in the room
//   mentions       rules.subscribe('mention.<user>')                 emitted by the "mentions" rule
//   counter        rules.subscribe('room.counted') + rules.getFact   kept by the counter rules
import { NoexClient } from '/pkg/index.js';
import { createRoom, sendMessage, join, leave, messageCount } from './chat.js';

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

  const client = await NoexClient.connect(url);
  const state = { client, roomId: null, joined: false, unsubscribe: [] };
  window.chat.panes[user] = state;
  client.on('disconnected', () => { $('.state').textContent = 'disconnected'; });
  client.on('reconnected', () => {
    $('.state').textContent = 'connected';
    // Presence is not tied to the socket: rejoin after a reconnect.
    if (state.joined) join(client, { roomId: state.roomId, user }).catch(showError);
  });

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
    state.unsubscribe.push(await client.store.subscribe('room-presence', { roomId }, (present) => {
      $('.presence').textContent = present.length ? `here: ${present.map((p) => p.user).join(', ')}` : 'nobody here';
    }));
    setCounter(await messageCount(client, roomId));
    await join(client, { roomId, user });
    state.joined = true;
    $('.leave').textContent = 'Leave';
  }
  state.enter = enter;

  select.addEventListener('change', () => enter(select.value).then(() => showError(null), showError));
  $('.leave').addEventListener('click', async () => {
    try {
      if (state.joined) {
        await leave(client, { user });
        state.joined = false;
        $('.leave').textContent = 'Join';
      } else {
        await join(client, { roomId: state.roomId, user });
        state.joined = true;
        $('.leave').textContent = 'Leave';
      }
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
  addEventListener('pagehide', () => { if (state.joined) leave(client, { user }).catch(() => {}); });

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
  status.textContent = `connected to ${url} (protocol ${panes[0].client.welcome.version})`;
  window.chat.ready = true;
} catch (e) {
  status.textContent = `failed: ${e.code} ${e.message}`;
  window.chat.error = `${e.code}: ${e.message}`;
}
