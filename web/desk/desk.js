// The desk: a manager's inbox. The user chat list with live presence dots,
// newest first with paging; a chat view with history, a send box and, for
// each manager message, its delivery state (delivered, read, SMS ...).
// Stays correct across its own reconnects: after each welcome it reloads
// what it shows; a presence_reset makes it query presence again.
import { Connection, api, pageTokenHook, tokenFromFragment, el, clock, timeAgo } from '/shared/connection.js';

const token = tokenFromFragment();
const $ = (id) => document.getElementById(id);

const state = {
  chats: new Map(),   // chat_id -> chat (as GET /v1/user-chats gives it)
  order: [],          // chat ids, newest first
  cursor: null,
  open: null,         // the open chat id
  messages: new Map(),  // seq -> message of the open chat
  notifications: [],  // of the open chat's user
  eventSeq: null,
  loads: 0,           // presence-bearing answers awaited (the list, a re-query)
  replay: [],         // presence frames that came meanwhile, applied again after
};

// An answer read at the server before a presence frame that reached us
// first would undo it: the frames that come while one is awaited are
// applied again, in order, once none is.
async function withPresenceReplay(fn) {
  state.loads += 1;
  try {
    return await fn();
  } finally {
    state.loads -= 1;
    if (state.loads === 0) {
      const again = state.replay;
      state.replay = [];
      for (const f of again) onPresence(f);
    }
  }
}

function showBanner(text, retry = true) {
  $('banner-text').textContent = text;
  $('retry').hidden = !retry;
  $('banner').hidden = false;
}

async function call(path, opts) {
  try {
    return await api(conn.token, path, opts);  // the newest token (refreshed)
  } catch (e) {
    if (e.status === 401) showBanner(`Your session has expired or is not valid (${e.code}). Reload with a new token.`, false);
    else if (e.status === 503) showBanner(`The server is busy; retrying in ${Math.ceil((e.retryAfter || 2000) / 1000)} s.`);
    throw e;
  }
}

// ---- the list ----

function dot(online) {
  return el('span', { class: `dot ${online ? 'on' : 'off'}`, role: 'img', 'aria-label': online ? 'online' : 'offline' });
}

function chatItem(c) {
  const last = c.last_message;
  const preview = last ? `${last.from === 'manager' ? 'You: ' : ''}${last.text}` : 'No messages yet';
  const seen = c.user.online ? 'online' : `last seen ${timeAgo(c.user.last_seen)}`;
  return el('li', { 'data-chat': c.chat_id, 'data-user': c.user.id, class: c.chat_id === state.open ? 'active' : '' },
    el('button', { type: 'button', class: 'chat-item', onclick: () => openChat(c.chat_id) },
      dot(c.user.online),
      el('span', { class: 'who' },
        el('span', { class: 'name' }, c.user.name || c.user.id),
        el('span', { class: 'preview' }, preview)),
      el('span', { class: 'side' },
        el('span', { class: 'seen' }, seen),
        c.unread > 0 ? el('span', { class: 'badge', 'aria-label': `${c.unread} unread` }, c.unread) : null)));
}

function renderList() {
  const ul = $('chats');
  ul.replaceChildren(...state.order.map((id) => chatItem(state.chats.get(id))));
  $('empty').hidden = state.order.length > 0;
  $('more').hidden = !state.cursor;
}

async function loadList(more = false) {
  const q = more && state.cursor ? `&cursor=${encodeURIComponent(state.cursor)}` : '';
  await withPresenceReplay(async () => {
    const page = await call(`/v1/user-chats?limit=50${q}`);
    if (!more) {
      state.chats.clear();
      state.order = [];
    }
    for (const c of page.user_chats) {
      if (!state.chats.has(c.chat_id)) state.order.push(c.chat_id);
      state.chats.set(c.chat_id, c);
    }
    state.cursor = page.next_cursor;
  });
  renderList();
}

let countTimer = null;
function refreshOnlineCount() {
  clearTimeout(countTimer);
  countTimer = setTimeout(async () => {
    try {
      $('online-count').textContent = (await call('/v1/presence/online')).online;
    } catch { /* shown by call() */ }
  }, 150);
}

async function requeryPresence() {
  const users = [...new Set([...state.chats.values()].map((c) => c.user.id))];
  await withPresenceReplay(async () => {
    for (let i = 0; i < users.length; i += 1000) {
      const r = await call('/v1/presence/query', { method: 'POST', body: { user_ids: users.slice(i, i + 1000) } });
      for (const c of state.chats.values()) {
        const p = r.users[c.user.id];
        if (p) Object.assign(c.user, { online: p.online, last_seen: p.last_seen });
      }
    }
  });
  renderList();
  renderChatHead();
  refreshOnlineCount();
}

// ---- the open chat ----

function chatOf(id) { return state.chats.get(id); }

function smsFor(seq) {
  return state.notifications.find((n) => n.first_seq <= seq && seq <= n.last_seq);
}

function deliveryOf(m, chat) {
  if (m.from !== 'manager') return null;
  const parts = [];
  if (chat.user_read_seq >= m.seq) parts.push('read');
  else if (chat.user_ack_seq >= m.seq) parts.push('delivered');
  else parts.push('sent');
  const n = smsFor(m.seq);
  if (n) {
    const why = n.state === 'cancelled' || n.state === 'failed' ? ` (${n.reason.replace(/_/g, ' ')})` : '';
    parts.push(`SMS ${n.state}${why}`);
  }
  return parts.join(' · ');
}

function renderMessages() {
  const chat = chatOf(state.open);
  if (!chat) return;
  const seqs = [...state.messages.keys()].sort((a, b) => a - b);
  $('messages').replaceChildren(...seqs.map((s) => {
    const m = state.messages.get(s);
    const d = deliveryOf(m, chat);
    return el('li', { class: `msg ${m.from === 'manager' ? 'mine' : 'theirs'}`, 'data-seq': m.seq },
      el('p', { class: 'text' }, m.text),
      el('span', { class: 'meta' }, `${m.from === 'manager' ? (m.sender_id || 'You') : chat.user.name || chat.user.id} · ${clock(m.created_at)}`),
      d ? el('span', { class: 'delivery', 'data-delivery': d }, d) : null);
  }));
  const last = $('messages').lastElementChild;
  if (last) last.scrollIntoView({ block: 'end' });
}

function renderChatHead() {
  const chat = chatOf(state.open);
  if (!chat) return;
  $('chat-title').textContent = chat.user.name || chat.user.id;
  $('chat-presence').replaceChildren(dot(chat.user.online),
    chat.user.online ? ' online' : ` last seen ${timeAgo(chat.user.last_seen)}`);
}

async function loadMessages() {
  const id = state.open;
  if (!id) return;
  let after = 0;
  const all = new Map();
  for (;;) {
    const r = await call(`/v1/user-chats/${encodeURIComponent(id)}/messages?after_seq=${after}&limit=1000`);
    for (const m of r.messages) all.set(m.seq, m);
    if (r.messages.length < 1000) break;
    after = r.messages[r.messages.length - 1].seq;
  }
  if (state.open !== id) return;
  state.messages = all;
  await loadNotifications();
  renderMessages();
}

async function loadNotifications() {
  const chat = chatOf(state.open);
  if (!chat) return;
  const r = await call(`/v1/notifications?user_id=${encodeURIComponent(chat.user.id)}`);
  state.notifications = r.notifications.filter((n) => n.chat_id === chat.chat_id);
}

async function openChat(id) {
  state.open = id;
  state.messages = new Map();
  document.body.classList.add('chat-open');
  $('chat').hidden = false;
  $('placeholder').hidden = true;
  $('send-error').hidden = true;
  renderList();
  renderChatHead();
  await loadMessages();
  $('text').focus();
}

// SMS states change on the server's schedule: look again while a chat is open.
setInterval(async () => {
  if (!state.open || document.visibilityState !== 'visible') return;
  try {
    await loadNotifications();
    renderMessages();
  } catch { /* shown by call() */ }
}, 2000);

$('compose').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('text').value.trim();
  if (!text || !state.open) return;
  const key = crypto.randomUUID();  // a retry of this send returns the same message
  $('send').disabled = true;
  $('send-error').hidden = true;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const r = await call(`/v1/user-chats/${encodeURIComponent(state.open)}/messages`,
        { method: 'POST', body: { text }, headers: { 'Idempotency-Key': key } });
      if (!state.messages.has(r.seq)) {
        state.messages.set(r.seq, { id: r.id, chat_id: r.chat_id, seq: r.seq, from: 'manager', text, created_at: r.created_at });
      }
      $('text').value = '';
      await loadNotifications();
      renderMessages();
      break;
    } catch (e) {
      if (e.status && e.status < 500) {
        $('send-error').textContent = `Not sent: ${e.message}`;
        $('send-error').hidden = false;
        break;
      }
      await new Promise((r) => setTimeout(r, e.retryAfter || 1000));
      if (attempt === 2) {
        $('send-error').textContent = 'Not sent: the server did not answer. Try again.';
        $('send-error').hidden = false;
      }
    }
  }
  $('send').disabled = false;
});

$('text').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) {
    ev.preventDefault();
    $('compose').requestSubmit();
  }
});
$('more').addEventListener('click', () => loadList(true));
$('back').addEventListener('click', () => {
  state.open = null;
  document.body.classList.remove('chat-open');
  $('chat').hidden = true;
  $('placeholder').hidden = false;
  renderList();
});
$('retry').addEventListener('click', () => {
  $('banner').hidden = true;
  conn.retryNow();
});

// ---- live frames ----

function onPresence(f) {
  if (state.loads > 0) state.replay.push(f);
  for (const c of state.chats.values()) {
    if (c.user.id !== f.user_id) continue;
    c.user.online = f.online;
    c.user.last_seen = f.last_seen;
  }
  for (const li of $('chats').querySelectorAll(`li[data-user="${CSS.escape(f.user_id)}"]`)) {
    // A chat the page shows may be gone from a list just loaded, not yet
    // rendered (a presence frame applied again after the answer).
    const c = chatOf(li.dataset.chat);
    if (c) li.replaceWith(chatItem(c));
    else li.remove();
  }
  if (chatOf(state.open)?.user.id === f.user_id) renderChatHead();
  refreshOnlineCount();
}

function onMessage(m) {
  const chat = chatOf(m.chat_id);
  if (!chat) {
    loadList().catch(() => {});  // a new chat: it comes first in a fresh page
    return;
  }
  chat.last_message = m;
  chat.last_seq = Math.max(chat.last_seq, m.seq);
  chat.updated_at = m.created_at;
  chat.unread = m.from === 'user' ? (m.chat_id === state.open ? 0 : chat.unread + 1) : 0;
  state.order = [m.chat_id, ...state.order.filter((id) => id !== m.chat_id)];
  renderList();
  if (m.chat_id === state.open && !state.messages.has(m.seq)) {
    state.messages.set(m.seq, m);
    renderMessages();
    if (m.from === 'manager') loadNotifications().then(renderMessages).catch(() => {});
  }
}

function onReceipt(r) {
  const chat = chatOf(r.chat_id);
  if (!chat) return;
  chat.user_ack_seq = Math.max(chat.user_ack_seq, r.ack_seq);
  chat.user_read_seq = Math.max(chat.user_read_seq, r.read_seq);
  if (r.chat_id === state.open) renderMessages();
}

const conn = new Connection({
  token,
  getToken: pageTokenHook(),
  hello() {
    // A resume that did not reach welcome is not tried again with the same
    // number: the next hello asks for the current state instead (the list is
    // reloaded on every welcome anyway), so the desk can never loop on it.
    if (state.resumeTried) state.eventSeq = null;
    state.resumeTried = state.eventSeq !== null;
    return state.eventSeq !== null ? { presence_after: state.eventSeq } : {};
  },
  onState(s, detail) {
    if (s === 'online') state.resumeTried = false;
    const st = $('status');
    st.dataset.state = s;
    if (s === 'online') {
      st.textContent = 'Live';
      $('banner').hidden = true;
    } else if (s === 'connecting') {
      st.textContent = 'Connecting…';
    } else if (s === 'waiting') {
      st.textContent = `Reconnecting in ${Math.ceil(detail.delay / 1000)} s…`;
    } else if (s === 'failed') {
      st.textContent = 'Disconnected';
      showBanner(detail.code === 'token_expired' || detail.code === 'session_expired'
        ? 'Your session has expired. Reload the desk with a new token.'
        : `Cannot connect: ${detail.message}`, false);
    }
  },
  async onFrame(f) {
    if (f.event_seq !== undefined && f.type !== 'welcome') state.eventSeq = f.event_seq;
    switch (f.type) {
      case 'welcome':
        state.eventSeq = f.event_seq ?? state.eventSeq;
        // What changed while we were away: reload what we show.
        try {
          await loadList();
          refreshOnlineCount();
          if (state.open) await loadMessages();
        } catch { /* shown by call() */ }
        break;
      case 'presence': onPresence(f); break;
      case 'presence_reset': requeryPresence().catch(() => {}); break;
      case 'message': onMessage(f); break;
      case 'receipt': onReceipt(f); break;
      default: break;
    }
  },
});

if (!token) showBanner('This page needs a manager token (#token=...).', false);
else conn.start();
window.onlinedDesk = { state, conn };  // for tests and debugging
