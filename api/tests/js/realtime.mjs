// The real @supabase/supabase-js realtime client (realtime-js, Phoenix channels) against
// Fluxbase's /realtime/v1/websocket, with `ws` as the transport and the protocol version
// from VSN (1.0.0 or 2.0.0). Two users sign up through auth-js, then:
//   postgres_changes  alice's own INSERT/UPDATE/DELETE arrive, a filtered channel gets only
//                     matching rows, bob's rows never reach alice (nor hers him);
//   broadcast         between alice and bob with self off, self + ack on, httpSend (REST);
//   presence          both tracked, synced on both sides, an untrack seen by the other;
//   heartbeats        answered.
// Writes go through supabase-js REST as each user. Every wait polls a condition with a
// deadline. Prints one JSON object on its last line; the Rust test asserts on it.
import WebSocket from 'ws';
import { createClient } from '@supabase/supabase-js';

const url = process.env.FLUXBASE_URL;
const anonKey = process.env.ANON_KEY;
const vsn = process.env.VSN;
const tag = process.env.TAG;

const heartbeats = { alice: [], bob: [] };
function client(name) {
  const c = createClient(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: {
      vsn,
      transport: WebSocket,
      heartbeatIntervalMs: 1000,
      heartbeatCallback: (status) => heartbeats[name].push(status),
    },
  });
  return c;
}

async function waitFor(what, cond, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(state)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Subscribes and resolves with the status once it is final. */
function subscribed(channel) {
  return new Promise((resolve) => {
    channel.subscribe((status, err) => {
      if (status !== 'SUBSCRIBED' || err) resolve({ status, error: err?.message ?? null });
      else resolve({ status, error: null });
    });
  });
}

const state = {
  vsn,
  aliceAll: [],
  aliceFiltered: [],
  bobAll: [],
  aliceSystem: [],
  aliceWaves: [],
  bobWaves: [],
  selfWaves: [],
  aliceSync: [],
  bobSync: [],
};
const change = (p) => ({
  eventType: p.eventType,
  table: p.table,
  schema: p.schema,
  new: p.new,
  old: p.old,
  errors: p.errors ?? null,
  commit_timestamp: typeof p.commit_timestamp,
});

const alice = client('alice');
const bob = client('bob');
const password = 'correct horse battery';
const up = async (c, who) => {
  const { data, error } = await c.auth.signUp({ email: `${who}-${tag}@example.com`, password });
  if (error) throw error;
  await c.realtime.setAuth(data.session.access_token);
  return data.user.id;
};
state.aliceId = await up(alice, 'alice');
state.bobId = await up(bob, 'bob');

// postgres_changes
const all = alice
  .channel('todos-all')
  .on('postgres_changes', { event: '*', schema: 'public', table: 'todos' }, (p) =>
    state.aliceAll.push(change(p)),
  )
  .on('system', {}, (p) => state.aliceSystem.push(p));
const filtered = alice
  .channel('todos-wanted')
  .on(
    'postgres_changes',
    { event: 'INSERT', schema: 'public', table: 'todos', filter: 'title=eq.wanted' },
    (p) => state.aliceFiltered.push(change(p)),
  );
const bobs = bob
  .channel('todos-bob')
  .on('postgres_changes', { event: '*', schema: 'public', table: 'todos' }, (p) =>
    state.bobAll.push(change(p)),
  );
state.subscribe = {
  all: await subscribed(all),
  filtered: await subscribed(filtered),
  bob: await subscribed(bobs),
};
// The bindings came back with their server ids, in order.
state.bindingIds = all.bindings.postgres_changes.map((b) => typeof b.id);
await waitFor('Subscribed to PostgreSQL', () =>
  state.aliceSystem.some((m) => m.message === 'Subscribed to PostgreSQL'),
);

const insert = async (c, title) => {
  const { data, error } = await c.from('todos').insert({ title }).select().single();
  if (error) throw new Error(JSON.stringify(error));
  return data.id;
};
const wanted = await insert(alice, 'wanted');
const other = await insert(alice, 'other');
{
  const { error } = await alice.from('todos').update({ done: true }).eq('id', other);
  if (error) throw new Error(JSON.stringify(error));
}
{
  const { error } = await alice.from('todos').delete().eq('id', wanted);
  if (error) throw new Error(JSON.stringify(error));
}
const bobRow = await insert(bob, 'wanted');
// Written last by alice: once it arrives, everything committed before it has arrived.
const marker = await insert(alice, 'wanted');
state.ids = { wanted, other, bobRow, marker };
await waitFor('alice marker', () => state.aliceAll.some((c) => c.new?.id === marker));
await waitFor('filtered marker', () => state.aliceFiltered.some((c) => c.new?.id === marker));
await waitFor('bob own row', () => state.bobAll.some((c) => c.new?.id === bobRow));
// Bob's socket sees his row; then alice's marker was committed after it. A second bob
// row written after alice's marker closes his view.
const bobMarker = await insert(bob, 'bob-marker');
await waitFor('bob marker', () => state.bobAll.some((c) => c.new?.id === bobMarker));
state.ids.bobMarker = bobMarker;

// broadcast: self off (the default) between alice and bob
const roomA = alice.channel('room').on('broadcast', { event: 'wave' }, (m) => state.aliceWaves.push(m.payload));
const roomB = bob.channel('room').on('broadcast', { event: 'wave' }, (m) => state.bobWaves.push(m.payload));
state.subscribe.roomA = await subscribed(roomA);
state.subscribe.roomB = await subscribed(roomB);
state.sendA = await roomA.send({ type: 'broadcast', event: 'wave', payload: { n: 1, from: 'alice' } });
await waitFor('bob got wave 1', () => state.bobWaves.length >= 1);
state.sendB = await roomB.send({ type: 'broadcast', event: 'wave', payload: { n: 2, from: 'bob' } });
await waitFor('alice got wave 2', () => state.aliceWaves.length >= 1);
// Server-side send through the REST API (realtime-js httpSend).
state.httpSend = await roomA.httpSend('wave', { n: 3, from: 'rest' }).then(
  (r) => r,
  (e) => ({ error: e.message }),
);
await waitFor('both got wave 3', () =>
  state.aliceWaves.some((w) => w.n === 3) && state.bobWaves.some((w) => w.n === 3),
);

// broadcast: self and ack on
const echo = alice
  .channel('echo', { config: { broadcast: { self: true, ack: true } } })
  .on('broadcast', { event: 'ping' }, (m) => state.selfWaves.push(m.payload));
state.subscribe.echo = await subscribed(echo);
state.ackedSend = await echo.send({ type: 'broadcast', event: 'ping', payload: { me: true } });
await waitFor('own broadcast back', () => state.selfWaves.length >= 1);

// presence
const keysOf = (ch) => Object.keys(ch.presenceState()).sort();
const lobbyA = alice.channel('lobby', { config: { presence: { key: 'alice' } } });
const lobbyB = bob.channel('lobby', { config: { presence: { key: 'bob' } } });
lobbyA.on('presence', { event: 'sync' }, () => state.aliceSync.push(keysOf(lobbyA)));
lobbyB.on('presence', { event: 'sync' }, () => state.bobSync.push(keysOf(lobbyB)));
state.subscribe.lobbyA = await subscribed(lobbyA);
state.subscribe.lobbyB = await subscribed(lobbyB);
state.trackA = await lobbyA.track({ name: 'Alice' });
state.trackB = await lobbyB.track({ name: 'Bob' });
const both = (s) => s.length > 0 && JSON.stringify(s.at(-1)) === '["alice","bob"]';
await waitFor('presence synced on both sides', () => both(state.aliceSync) && both(state.bobSync));
state.aliceSees = lobbyA.presenceState();
state.untrackB = await lobbyB.untrack();
await waitFor('bob left alice view', () => JSON.stringify(state.aliceSync.at(-1)) === '["alice"]');

// heartbeats
await waitFor('two heartbeats answered', () =>
  heartbeats.alice.filter((s) => s === 'ok').length >= 2,
);
state.heartbeats = {
  ok: heartbeats.alice.filter((s) => s === 'ok').length >= 2,
  failed: heartbeats.alice.filter((s) => s === 'error' || s === 'timeout').length,
};

state.removed = await alice.removeChannel(all);
state.connected = alice.realtime.isConnected();
await alice.removeAllChannels();
await bob.removeAllChannels();
console.log(JSON.stringify(state));
process.exit(0);
