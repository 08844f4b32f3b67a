// The design that fell over in 2017, as a competent team of that time would
// have built it: Node with `ws` and `pg`, presence in a PostgreSQL table keyed
// by user that every heartbeat writes, the desk's chat list joined with that
// table, and a send path that stores the message and then asks the database
// whether the user is online before deciding on an SMS. A connection pool,
// prepared (named) statements, primary keys and the index the list needs.
//
// It speaks what bench/loadgen drives, as onlined does:
//   GET /v1/connect (WebSocket): {"type":"hello","token"} -> welcome; {"type":"ping"} -> pong
//   POST /v1/presence/query {"user_ids":[...]}            -> {"users":{id:{online,last_seen}}}
//   GET /v1/user-chats?limit=N                            -> {"chats":[... with "online"]}
//   POST /v1/user-chats/{chat_id}/messages {"text"}       -> 201 {"id","seq"}; the user's sockets
//                                                            get {"type":"message",...} live
// Like the other peers it reads the token's claims without checking the
// signature. A chat's id is its user's id; `--seed N` creates chats u0..u(N-1).
// A heartbeat counts once it is recorded: the pong follows the write. What
// the pool cannot run yet waits in its queue (unbounded, as pg.Pool's is); a
// request that waited 5 s for a connection fails with 500.
//
//   DATABASE_URL=postgresql://... node incident-server.mjs [--seed N] [--pool N]
//   prints "onlined: listening on http://127.0.0.1:PORT"
import http from 'node:http';
import pg from 'pg';
import { WebSocketServer } from 'ws';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ONLINE_MS = 60_000;  // a user is online if a heartbeat came within this
const SMS_DELAY_MS = 60_000;

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: arg('--pool', 16),
                           connectionTimeoutMillis: 5000 });
pool.on('error', () => {});  // an idle client lost (the database paused): the next query says so

await pool.query(`
  CREATE TABLE IF NOT EXISTS presence (user_id text PRIMARY KEY, last_seen bigint NOT NULL);
  CREATE TABLE IF NOT EXISTS chats (chat_id text PRIMARY KEY, user_id text NOT NULL, last_seq bigint NOT NULL DEFAULT 0,
                                    updated_at bigint NOT NULL);
  CREATE INDEX IF NOT EXISTS chats_newest ON chats (updated_at DESC, chat_id DESC);
  CREATE TABLE IF NOT EXISTS messages (chat_id text NOT NULL, seq bigint NOT NULL, text text NOT NULL,
                                       created_at bigint NOT NULL, PRIMARY KEY (chat_id, seq));
  CREATE TABLE IF NOT EXISTS sms_outbox (id bigserial PRIMARY KEY, chat_id text NOT NULL, seq bigint NOT NULL,
                                         due_at bigint NOT NULL);
`);
const seed = arg('--seed', 0);
if (seed > 0) {
  await pool.query(`INSERT INTO chats (chat_id, user_id, updated_at)
                    SELECT 'u' || i, 'u' || i, $1 FROM generate_series(0, $2 - 1) AS i
                    ON CONFLICT DO NOTHING`, [Date.now(), seed]);
}

const Q = {
  beat: { name: 'beat', text: `INSERT INTO presence (user_id, last_seen) VALUES ($1, $2)
                               ON CONFLICT (user_id) DO UPDATE SET last_seen = EXCLUDED.last_seen` },
  gone: { name: 'gone', text: 'DELETE FROM presence WHERE user_id = $1' },
  query: { name: 'query', text: 'SELECT user_id, last_seen FROM presence WHERE user_id = ANY($1)' },
  list: { name: 'list', text: `SELECT c.chat_id, c.user_id, c.last_seq, c.updated_at, p.last_seen
                               FROM chats c LEFT JOIN presence p ON p.user_id = c.user_id
                               ORDER BY c.updated_at DESC, c.chat_id DESC LIMIT $1` },
  next: { name: 'next', text: `UPDATE chats SET last_seq = last_seq + 1, updated_at = $2 WHERE chat_id = $1
                               RETURNING last_seq, user_id` },
  store: { name: 'store', text: 'INSERT INTO messages (chat_id, seq, text, created_at) VALUES ($1, $2, $3, $4)' },
  online: { name: 'online', text: 'SELECT last_seen FROM presence WHERE user_id = $1' },
  sms: { name: 'sms', text: 'INSERT INTO sms_outbox (chat_id, seq, due_at) VALUES ($1, $2, $3)' },
};
const run = (q, values) => pool.query({ ...q, values });

const sockets = new Map();  // user -> Set of ws (delivery to the sockets this process holds)

function claimsOf(token) {
  try {
    return JSON.parse(Buffer.from(String(token).split('.')[1], 'base64url').toString());
  } catch {
    return null;
  }
}

function reply(res, status, obj) {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(obj === undefined ? '' : JSON.stringify(obj));
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => resolve(body));
  });
}

async function send(res, chatId, body) {
  const now = Date.now();
  const client = await pool.connect();
  let seq, user;
  try {
    await client.query('BEGIN');
    const r = await client.query({ ...Q.next, values: [chatId, now] });
    if (r.rowCount === 0) {
      await client.query('ROLLBACK');
      return reply(res, 404, { error: 'no such chat' });
    }
    seq = Number(r.rows[0].last_seq);
    user = r.rows[0].user_id;
    await client.query({ ...Q.store, values: [chatId, seq, body.text, now] });
    // The 2017 send path: is the user online? Ask the presence table.
    const p = await client.query({ ...Q.online, values: [user] });
    const online = p.rowCount > 0 && now - Number(p.rows[0].last_seen) < ONLINE_MS;
    if (!online) await client.query({ ...Q.sms, values: [chatId, seq, now + SMS_DELAY_MS] });
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    client.release();
  }
  const frame = JSON.stringify({ type: 'message', chat_id: chatId, seq, from: 'manager', text: body.text,
                                 created_at: now });
  for (const ws of sockets.get(user) || []) ws.send(frame);
  reply(res, 201, { id: `${chatId}:${seq}`, seq });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://x');
    const m = url.pathname.match(/^\/v1\/user-chats\/([^/]+)\/messages$/);
    if (req.method === 'POST' && m) {
      return await send(res, decodeURIComponent(m[1]), JSON.parse(await readBody(req)));
    }
    if (req.method === 'GET' && url.pathname === '/v1/user-chats') {
      const limit = Math.min(200, Number(url.searchParams.get('limit')) || 50);
      const now = Date.now();
      const r = await run(Q.list, [limit]);
      return reply(res, 200, { chats: r.rows.map((c) => ({
        chat_id: c.chat_id, user_id: c.user_id, last_seq: Number(c.last_seq), updated_at: Number(c.updated_at),
        online: c.last_seen !== null && now - Number(c.last_seen) < ONLINE_MS,
        last_seen: c.last_seen === null ? null : Number(c.last_seen) })) });
    }
    if (req.method === 'POST' && url.pathname === '/v1/presence/query') {
      const ids = JSON.parse(await readBody(req)).user_ids || [];
      const r = await run(Q.query, [ids]);
      const seen = new Map(r.rows.map((row) => [row.user_id, Number(row.last_seen)]));
      const now = Date.now();
      const users = {};
      for (const id of ids) {
        const t = seen.get(id);
        users[id] = { online: t !== undefined && now - t < ONLINE_MS, last_seen: t === undefined ? null : t };
      }
      return reply(res, 200, { users });
    }
    reply(res, 404, { error: 'not found' });
  } catch (e) {
    // What the 2017 system did when its database was gone: an error, after
    // however long the pool and the driver took to give up.
    if (!res.headersSent) reply(res, 500, { error: String(e.message || e) });
  }
});

const wss = new WebSocketServer({ server, path: '/v1/connect', perMessageDeflate: false });
wss.on('connection', (ws) => {
  let user = null;
  ws.on('message', async (data) => {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    if (f.type === 'hello' && user === null) {
      const c = claimsOf(f.token);
      if (!c || !c.sub) return ws.close(1008);
      user = c.sub;
      if (!sockets.has(user)) sockets.set(user, new Set());
      sockets.get(user).add(ws);
      try {
        if (c.role !== 'manager') await run(Q.beat, [user, Date.now()]);
        ws.send(JSON.stringify({ type: 'welcome', heartbeat_s: 25 }));
      } catch {
        ws.close(1011);
      }
    } else if (f.type === 'ping' && user !== null) {
      try {
        await run(Q.beat, [user, Date.now()]);  // every heartbeat is a write
        ws.send('{"type":"pong"}');
      } catch {
        // the database is gone: the heartbeat is lost, the pong not sent
      }
    }
  });
  ws.on('close', () => {
    if (user === null) return;
    const set = sockets.get(user);
    set.delete(ws);
    if (set.size === 0) {
      sockets.delete(user);
      run(Q.gone, [user]).catch(() => {});
    }
  });
});

// The listen queue onlined, Beast and the floors ask for (SOMAXCONN, 4096 here), not Node's
// default of 511: with 511, a reconnect storm overflowed it and the figure measured SYN
// retransmission timers (README, Performance, "The peers").
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`onlined: listening on http://127.0.0.1:${server.address().port}`);
});
