// The chat's data operations on top of the noex wasm client. Used by the page (app.js) and
// usable from Node with the same package: every function takes a connected NoexClient.

/** `@name` tokens of a message, lower-cased and without duplicates. */
export function mentionsOf(text) {
  const names = [...text.matchAll(/@([a-z0-9_-]{1,32})/gi)].map((m) => m[1].toLowerCase());
  return [...new Set(names)];
}

/**
 * Creates a room and its "room created" system message in ONE transaction: both appear, or
 * (e.g. the id is taken: ALREADY_EXISTS) neither does. Resolves to the room record.
 */
export async function createRoom(client, { id, title, user }) {
  const { results } = await client.store.transaction([
    { op: 'insert', bucket: 'rooms', data: { id, title, createdBy: user } },
    { op: 'insert', bucket: 'messages', data: { roomId: id, from: user, kind: 'system', text: `${user} created the room "${title}"` } },
  ]);
  return results[0].data;
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
 * Presence: one record per user in the `presence` bucket saying which room they are in.
 * Joining replaces the user's record atomically (delete + insert in one transaction), so
 * watchers of the old and the new room see the move at once.
 */
export async function join(client, { roomId, user }) {
  await client.store.transaction([
    { op: 'delete', bucket: 'presence', key: user },
    { op: 'insert', bucket: 'presence', data: { user, roomId } },
  ]);
}

/** Presence: the user left (the page calls it on "Leave" and when it is closed). */
export async function leave(client, { user }) {
  await client.store.bucket('presence').delete(user);
}

/** The room's message counter kept by the rules (a fact), or null before the first message. */
export async function messageCount(client, roomId) {
  return client.rules.getFact(`room:${roomId}:messages`);
}
