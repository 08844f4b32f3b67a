// A WebSocket to onlined's /v1/connect that stays up: hello with the token,
// heartbeats at the interval the server announces, reconnects with jittered
// exponential backoff (honouring a server's retry_after_ms), and reports its
// state. Used by the desk and the widget.

// The page's token: from the URL fragment, which is then cleared from the
// address bar and the history (a shared screen or a copied link would show
// it) and kept for this tab only, so a reload finds it again.
export function tokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = `onlined.token${location.pathname}`;
  const fresh = params.get('token');
  if (fresh) {
    try {
      sessionStorage.setItem(key, fresh);
      history.replaceState(null, '', location.pathname + location.search);
    } catch {
      // No storage (a sandboxed frame): the token stays in the fragment.
    }
    return fresh;
  }
  try {
    return sessionStorage.getItem(key) || '';
  } catch {
    return '';
  }
}

export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return null;
  }
}

// Codes after which retrying with the same token cannot help.
const FATAL = new Set(['bad_token', 'token_expired', 'unknown_channel', 'session_expired']);

// The page's hook for fresh tokens: window.onlinedGetToken, if the page
// defines it, is an async function returning a new token for the same
// channel, subject and role (from the page's own backend, which holds the
// channel's secret; the browser never does). Without it a session ends at
// its token's exp and the page says so.
export function pageTokenHook() {
  return typeof window.onlinedGetToken === 'function' ? window.onlinedGetToken : null;
}

export class Connection {
  // hello(): extra hello fields (resume, presence_after), asked at each connect.
  // onFrame(frame), onState(state, detail): 'connecting' | 'online' | 'waiting' | 'failed'.
  // getToken(): async, a fresh token; asked a minute before the session's
  // expires_at (halfway for a shorter token) and after an expiry.
  constructor({ token, getToken = null, hello = () => ({}), onFrame = () => {}, onState = () => {} }) {
    this.token = token;
    this.getToken = getToken;
    this.refreshTimer = null;
    this.hello = hello;
    this.onFrame = onFrame;
    this.onState = onState;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.heartbeat = null;
    this.stopped = false;
    this.retryHint = 0;
    this.lastError = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    clearInterval(this.heartbeat);
    if (this.ws) this.ws.close(1000);
  }

  // Reconnect now (the user pressed "retry").
  retryNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    this.stopped = false;
    this.connect();
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.live) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  connect() {
    if (this.stopped) return;
    this.live = false;
    this.lastError = null;
    this.onState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/connect`);
    } catch (e) {
      this.scheduleRetry('cannot open a connection');
      return;
    }
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', token: this.token, ...this.hello() }));
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.type === 'welcome') {
        this.live = true;
        this.attempt = 0;
        clearInterval(this.heartbeat);
        const every = Math.max(1, frame.heartbeat_s || 25) * 1000;
        this.heartbeat = setInterval(() => this.send({ type: 'ping' }), every);
        this.planRefresh(frame.expires_at);
        this.onState('online');
      } else if (frame.type === 'refreshed') {
        this.planRefresh(frame.expires_at);
      } else if (frame.type === 'error') {
        this.lastError = frame;
        if (frame.retry_after_ms) this.retryHint = frame.retry_after_ms;
      }
      if (frame.type !== 'pong') this.onFrame(frame);
    };
    ws.onclose = (ev) => {
      clearInterval(this.heartbeat);
      clearTimeout(this.refreshTimer);
      const wasLive = this.live;
      this.live = false;
      if (this.stopped || this.ws !== ws) return;
      const code = this.lastError && this.lastError.code;
      if (this.getToken && (code === 'session_expired' || code === 'token_expired')) {
        this.renewAndReconnect();
        return;
      }
      if (this.lastError && FATAL.has(this.lastError.code)) {
        this.onState('failed', this.lastError);
        return;
      }
      // 1013 (overloaded) and 1001 (a node draining) may say when to come back.
      if ((ev.code === 1013 || ev.code === 1001) && ev.reason) {
        const m = /retry_after_ms"?\s*:\s*(\d+)/.exec(ev.reason);
        if (m) this.retryHint = Number(m[1]);
      }
      this.scheduleRetry(wasLive ? 'connection lost' : 'server unreachable');
    };
  }

  // The session's end is known: ask for a new token ahead of it.
  planRefresh(expiresAt) {
    clearTimeout(this.refreshTimer);
    if (!this.getToken || !expiresAt) return;
    const left = expiresAt - Date.now();
    const lead = Math.min(60000, left / 2);
    this.refreshTimer = setTimeout(() => this.refresh(), Math.max(1000, left - lead));
  }

  async fetchToken() {
    try {
      const t = await this.getToken();
      return typeof t === 'string' && t ? t : null;
    } catch {
      return null;
    }
  }

  async refresh() {
    const t = await this.fetchToken();
    if (!t || this.stopped) return;  // no new token: the session ends at expires_at
    this.token = t;
    this.send({ type: 'refresh', token: t });
  }

  async renewAndReconnect() {
    const t = await this.fetchToken();
    if (!t) {
      this.onState('failed', this.lastError);
      return;
    }
    this.token = t;
    this.attempt = 0;
    this.connect();
  }

  scheduleRetry(why) {
    const base = Math.min(30000, 500 * 2 ** this.attempt);
    const delay = Math.max(this.retryHint, base / 2 + Math.random() * base / 2);  // jitter
    this.retryHint = 0;
    this.attempt = Math.min(this.attempt + 1, 10);
    this.onState('waiting', { why, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}

// fetch() with the Bearer token and the contract's error body turned into
// an Error with .status and .code.
export async function api(token, path, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new Error(data?.error?.message || `HTTP ${res.status}`);
    err.status = res.status;
    err.code = data?.error?.code || 'http_error';
    err.retryAfter = Number(res.headers.get('Retry-After') || 0) * 1000;
    throw err;
  }
  return data;
}

export function timeAgo(ms) {
  if (!ms) return 'never';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));  // text, never HTML
  }
  return e;
}
