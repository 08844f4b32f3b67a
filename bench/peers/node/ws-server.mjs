// A presence server on the `ws` library, written as a user of it would:
// the same frames as onlined (hello/welcome, ping/pong) and the same
// presence query, presence in a Map. The peer `bench/run` compares against.
//   node ws-server.mjs [--redis]   prints "onlined: listening on http://127.0.0.1:PORT"
// With --redis, presence lives in Redis instead: each heartbeat is a SET ... EX,
// each query an MGET (the design that fell over in 2017, README "The incident, replayed").
import http from 'node:http';
import { WebSocketServer } from 'ws';

const useRedis = process.argv.includes('--redis');
let redis = null;
if (useRedis) {
  const { createClient } = await import('redis');
  redis = createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' });
  await redis.connect();
}

const users = new Map();  // user -> { sessions, lastSeen }

function userOf(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).sub;
  } catch {
    return null;
  }
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/presence/query') {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', async () => {
    const ids = JSON.parse(body).user_ids || [];
    const out = {};
    if (redis) {
      const vals = ids.length ? await redis.mGet(ids.map((id) => `presence:${id}`)) : [];
      ids.forEach((id, i) => { out[id] = { online: vals[i] !== null, last_seen: vals[i] ? Number(vals[i]) : null }; });
    } else {
      for (const id of ids) {
        const u = users.get(id);
        out[id] = { online: !!u && u.sessions > 0, sessions: u ? u.sessions : 0, last_seen: u ? u.lastSeen : null };
      }
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ users: out }));
  });
});

const wss = new WebSocketServer({ server, path: '/v1/connect', perMessageDeflate: false });
wss.on('connection', (ws) => {
  let user = null;
  ws.on('message', async (data) => {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    const now = Date.now();
    if (f.type === 'hello') {
      user = userOf(f.token);
      if (!user) return ws.close(1008);
      if (redis) await redis.set(`presence:${user}`, String(now), { EX: 60 });
      else {
        const u = users.get(user) || { sessions: 0, lastSeen: now };
        u.sessions++;
        u.lastSeen = now;
        users.set(user, u);
      }
      ws.send(JSON.stringify({ type: 'welcome', heartbeat_s: 25 }));
    } else if (f.type === 'ping' && user) {
      if (redis) await redis.set(`presence:${user}`, String(now), { EX: 60 });
      else users.get(user).lastSeen = now;
      ws.send('{"type":"pong"}');
    }
  });
  ws.on('close', () => {
    if (!user) return;
    if (redis) redis.del(`presence:${user}`).catch(() => {});
    else users.get(user).sessions--;
  });
});

// The listen queue onlined, Beast and the floors ask for (SOMAXCONN, 4096 here), not Node's
// default of 511: with 511, a reconnect storm overflowed it and the figure measured SYN
// retransmission timers (README, Performance, "The peers").
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`onlined: listening on http://127.0.0.1:${server.address().port}`);
});
