// The chat's data operations on top of the noex wasm client. Used by the page (app.js) and
// usable from Node with the same package: every function takes a connected NoexClient.

/** `@name` tokens of a message, lower-cased and without duplicates. */
export function mentionsOf(text) {
  const names = [...text.matchAll(/@([a-z0-9_-]{1,32})/gi)].map((m) => m[1].toLowerCase());
  return [...new Set(names)];
}

/**
 * Creates a room and its "room created" system message in ONE transaction: both appear, or
 * (e.g. the id is taken: ALREADY_EXISTS) neither does. The message goes first, so a failing
 * room insert has a write to roll back. Resolves to the room record.
 */
export async function createRoom(client, { id, title, user }) {
  const { results } = await client.store.transaction([
    { op: 'insert', bucket: 'messages', data: { roomId: id, from: user, kind: 'system', text: `${user} created the room "${title}"` } },
    { op: 'insert', bucket: 'rooms', data: { id, title, createdBy: user } },
  ]);
  return results[1].data;
}

/**
 * Stores a message and counts the room's messages in one transaction (the count sees the new
 * message and nothing half-done), then emits `message.sent` for the rules: they keep the
 * room's counter fact and notify every @mentioned user. Resolves to the stored message.
 */
export async function sendMessage(client, { roomId, user, text }) {
  const { results } = await client.store.transaction([
    { op: 'insert', bucket: 'messages', data: { roomId, from: user, text } },
    { op: 'count', bucket: 'messages', filter: { roomId, kind: 'user' } },
  ]);
  const message = results[0].data;
  const data = { roomId, messageId: message.id, from: user, text, count: results[1].data };
  const mentions = mentionsOf(text).filter((name) => name !== user.toLowerCase());
  if (mentions.length > 0) data.mentions = mentions;
  await client.rules.emit('message.sent', data);
  return message;
}

/**
 * Who is online: the server emits connection.login / logout / closed events (noex.json
 * `rules.connectionEvents`), and the presence rules keep one fact `online:<userId>:<connection>`
 * per logged-in connection. A browser that crashes loses its socket, so its fact goes too.
 * The facts hold the identity's user ids; the `members` bucket (written by chat-setup, read-only
 * for members) names them. Resolves to the sorted, distinct user names.
 */
export async function onlineUsers(client) {
  const facts = await client.rules.queryFacts('online:*:*');
  const ids = new Set(facts.map((fact) => fact.key.split(':')[1]));
  const names = new Map((await client.store.bucket('members').all()).map((m) => [m.id, m.name]));
  return [...ids].map((id) => names.get(id) ?? id).sort();
}

/** The room's message counter kept by the rules (a fact), or null before the first message. */
export async function messageCount(client, roomId) {
  return client.rules.getFact(`room:${roomId}:messages`);
}
