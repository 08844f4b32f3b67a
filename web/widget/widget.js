// The chat widget: the user's side. Connects with the user token from the
// URL fragment, shows the chat live, acks what it receives, marks read what
// is visible, reports idle/active, and survives reconnects without losing
// or repeating a message.
import { Connection, pageTokenHook, tokenFromFragment, claimsOf, el, clock } from '/shared/connection.js';

const token = tokenFromFragment();
const $ = (id) => document.getElementById(id);
const messagesEl = $('messages');
const statusEl = $('status');

// chat_id -> highest seq shown; kept across reloads so a reload resumes.
// Kept per channel and user: a tab reloaded with another user's token does
// not take the last user's chat.
const who = claimsOf(token) || {};
const RESUME_KEY = `onlined.resume.${who.ch || ''}.${who.sub || ''}`;
const resume = JSON.parse(sessionStorage.getItem(RESUME_KEY) || '{}');
const shown = new Map();  // message id -> element
let chatId = Object.keys(resume)[0] || '';
// Whether chatId is only what this tab kept (not yet confirmed by a frame of
// this page's connection): an unknown_chat then means it is stale.
let chatKept = chatId !== '';
let recovering = false;  // resent without the stale chat id; its refusals are expected
const pending = new Map();  // client_msg_id -> {text, el}

function saveResume() {
  sessionStorage.setItem(RESUME_KEY, JSON.stringify(resume));
}

function visible() {
  return document.visibilityState === 'visible';
}

function render(m) {
  if (shown.has(m.id)) return;
  const mine = m.from === 'user';
  const item = el('li', { class: `msg ${mine ? 'mine' : 'theirs'}`, 'data-seq': m.seq },
    el('p', { class: 'text' }, m.text),
    el('span', { class: 'meta' }, `${mine ? 'You' : 'Support'} · ${clock(m.created_at)}`));
  shown.set(m.id, item);
  // Keep seq order even if a replayed message lands after a live one.
  const after = [...messagesEl.children].find((c) => c.dataset.seq && Number(c.dataset.seq) > m.seq);
  messagesEl.insertBefore(item, after || null);
  item.scrollIntoView({ block: 'end' });
}

function markRead() {
  if (!chatId || !visible()) return;
  const seq = resume[chatId] || 0;
  if (seq > 0) conn.send({ type: 'read', chat_id: chatId, seq });
}

// Receipts are marks ("received up to seq"): the server merges a session's
// receipts into its newest marks and writes them at a pace (docs/protocol.md,
// receipts_per_s), so one ack per message of a long replay would only cost
// frames. The messages that arrive within RECEIPT_MS are acked (and read, if
// visible) once, with the newest seq.
const RECEIPT_MS = 250;
let receiptTimer = null;
let ackSent = {};  // chat_id -> newest seq acked on this connection

function receiptsSoon() {
  if (receiptTimer === null) receiptTimer = setTimeout(sendReceipts, RECEIPT_MS);
}

function sendReceipts() {
  receiptTimer = null;
  for (const [chat, seq] of Object.entries(resume)) {
    if (seq > (ackSent[chat] || 0)) {
      conn.send({ type: 'ack', chat_id: chat, seq });
      ackSent[chat] = seq;
    }
  }
  markRead();
}

const conn = new Connection({
  token,
  getToken: pageTokenHook(),
  hello: () => ({ resume }),
  onState(state, detail) {
    if (state === 'online') {
      statusEl.textContent = 'Online';
      statusEl.dataset.state = 'online';
      $('banner').hidden = true;
      conn.send({ type: 'state', state: visible() ? 'active' : 'idle' });
      for (const [id, p] of pending) conn.send({ type: 'send', client_msg_id: id, text: p.text, chat_id: chatId || undefined });
      // An ack written as the last connection went down may be lost: ack
      // again what was received (a mark the server has is a no-op).
      ackSent = {};
      receiptsSoon();
    } else if (state === 'connecting') {
      statusEl.textContent = 'Connecting…';
      statusEl.dataset.state = 'connecting';
    } else if (state === 'waiting') {
      statusEl.textContent = `Reconnecting in ${Math.ceil(detail.delay / 1000)} s…`;
      statusEl.dataset.state = 'waiting';
    } else if (state === 'failed') {
      statusEl.textContent = 'Disconnected';
      statusEl.dataset.state = 'failed';
      showBanner(detail.code === 'token_expired' || detail.code === 'session_expired'
        ? 'Your chat session has expired. Reload the page to start a new one.'
        : `We could not connect you (${detail.message}).`);
    }
  },
  onFrame(f) {
    if (f.type === 'message') {
      if (!chatId) chatId = f.chat_id;
      if (f.chat_id === chatId) chatKept = false;
      if (f.seq > (resume[f.chat_id] || 0)) {
        resume[f.chat_id] = f.seq;
        saveResume();
      }
      render(f);
      receiptsSoon();
    } else if (f.type === 'sent') {
      chatId = chatId || f.chat_id;
      chatKept = false;
      recovering = false;
      const p = pending.get(f.client_msg_id);
      if (p) {
        p.el.remove();
        pending.delete(f.client_msg_id);
      }
    } else if (f.type === 'error') {
      if (f.code === 'unknown_chat' && chatKept) {
        // The chat this tab kept is not this user's (or is gone): send
        // without it, and the server uses the user's own chat.
        chatId = '';
        chatKept = false;
        recovering = true;
        for (const k of Object.keys(resume)) delete resume[k];
        saveResume();
        for (const [id, p] of pending) conn.send({ type: 'send', client_msg_id: id, text: p.text });
        return;
      }
      if (f.code === 'unknown_chat' && recovering) return;  // the other sends made with it
      if (f.code !== 'hello_required') showBanner(`Something went wrong: ${f.message}`, false);
    }
  },
});

function showBanner(text, retry = true) {
  $('banner-text').textContent = text;
  $('retry').hidden = !retry;
  $('banner').hidden = false;
}

$('retry').addEventListener('click', () => {
  $('banner').hidden = true;
  conn.retryNow();
});

$('compose').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  const id = crypto.randomUUID();
  const item = el('li', { class: 'msg mine pending' }, el('p', { class: 'text' }, text),
    el('span', { class: 'meta' }, 'Sending…'));
  messagesEl.append(item);
  pending.set(id, { text, el: item });
  conn.send({ type: 'send', client_msg_id: id, text, chat_id: chatId || undefined });  // resent on reconnect
  $('text').value = '';
  $('text').focus();
});

$('text').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) {
    ev.preventDefault();
    $('compose').requestSubmit();
  }
});

document.addEventListener('visibilitychange', () => {
  conn.send({ type: 'state', state: visible() ? 'active' : 'idle' });
  markRead();
});
window.addEventListener('focus', markRead);

if (!token) {
  showBanner('This page needs a token (#token=...).', false);
} else {
  conn.start();
}
window.onlinedWidget = { conn };  // for tests and debugging
