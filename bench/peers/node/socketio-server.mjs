// A presence server on Socket.IO (the stack of the 2017 incident in README "The incident, replayed"),
// written as a user of it would: "hello" and "ping" events, presence in a
// Map, the same presence query over HTTP. Messages: POST
// /v1/user-chats/<chat>/messages relays an emit to the chat's user (a room
// per user; here a chat id is its user's id) and to the desks (managers, one
// room), in memory: nothing is stored.
//   node socketio-server.mjs   prints "onlined: listening on http://127.0.0.1:PORT"
import http from 'node:http';
import { Server } from 'socket.io';

const users = new Map();

function claimsOf(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  } catch {
    return null;
  }
}

let seq = 0;

const server = http.createServer((req, res) => {
  const send = req.method === 'POST' && req.url.match(/^\/v1\/user-chats\/([^/]+)\/messages$/);
  if (send) {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const chat = decodeURIComponent(send[1]);
      const m = { chat_id: chat, seq: ++seq, id: `m${seq}`, from: 'manager', text: JSON.parse(body).text,
                  created_at: Date.now() };
      io.to(chat).emit('message', m);
      io.to('desk').emit('message', m);
      res.writeHead(201, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: m.id, seq: m.seq }));
    });
    return;
  }
  if (req.method !== 'POST' || req.url !== '/v1/presence/query') return;  // socket.io handles its own paths
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    const out = {};
    for (const id of JSON.parse(body).user_ids || []) {
      const u = users.get(id);
      out[id] = { online: !!u && u.sessions > 0, sessions: u ? u.sessions : 0, last_seen: u ? u.lastSeen : null };
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ users: out }));
  });
});

const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.on('connection', (socket) => {
  let user = null;
  socket.on('hello', (f) => {
    const claims = claimsOf(f && f.token);
    user = claims && claims.sub;
    if (!user) return socket.disconnect(true);
    socket.join(claims.role === 'manager' ? 'desk' : user);
    const u = users.get(user) || { sessions: 0, lastSeen: Date.now() };
    u.sessions++;
    u.lastSeen = Date.now();
    users.set(user, u);
    socket.emit('welcome', { heartbeat_s: 25 });
  });
  socket.on('ping', () => {
    if (!user) return;
    users.get(user).lastSeen = Date.now();
    socket.emit('pong');
  });
  socket.on('disconnect', () => {
    if (user) users.get(user).sessions--;
  });
});

// The listen queue onlined, Beast and the floors ask for (SOMAXCONN, 4096 here), not Node's
// default of 511: with 511, a reconnect storm overflowed it and the figure measured SYN
// retransmission timers (README, Performance, "The peers").
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`onlined: listening on http://127.0.0.1:${server.address().port}`);
});
