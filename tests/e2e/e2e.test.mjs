// End-to-end: the real server, Debian's Chromium (playwright-core), the desk
// and the widget as people use them. Settings: heartbeat 1 s, grace 800 ms,
// SMS after 2 s through the log provider.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { launch, openPage } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const bin = process.env.E2E_ONLINED_BIN || path.join(root, 'build', 'onlined');
const shots = process.env.SCREENSHOT_DIR || path.join(root, 'build', 'screenshots');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onlined-e2e-'));
const config = path.join(dir, 'onlined.toml');
let port;
let server;
let browser;

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function startServer() {
  server = spawn(bin, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr.on('data', () => {});
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('onlined did not start')), 15000);
    server.stdout.on('data', (d) => {
      if (String(d).includes('listening')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

async function stopServer() {
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  await exited;
}

function token(role, sub, ttl = 3600) {
  return execFileSync(bin, ['token', '--config', config, '--channel', 'acme', '--role', role, '--sub', sub,
    '--ttl', String(ttl)]).toString().trim();
}

const base = () => `http://127.0.0.1:${port}`;
const manager = () => token('manager', 'maria');

async function api(method, p, body) {
  const r = await fetch(base() + p, {
    method, headers: { Authorization: `Bearer ${manager()}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  assert.ok(r.ok, `${method} ${p}: ${r.status}`);
  return r.json();
}

const page = (url) => openPage(browser, url);

// A series of /metrics, named with its labels ('onlined_x_total{code="y"}'); 0 while absent.
async function metric(series) {
  const r = await fetch(base() + '/metrics', { headers: { Authorization: 'Bearer e2e-metrics-token' } });
  assert.ok(r.ok, `/metrics: ${r.status}`);
  const line = (await r.text()).split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

const desk = () => page(`${base()}/desk#token=${manager()}`);
const widget = (user) => page(`${base()}/widget#token=${token('user', user)}`);

before(async () => {
  port = await freePort();
  fs.writeFileSync(config, `listen = "127.0.0.1:${port}"
data_dir = "${dir}/data"
heartbeat_s = 1
offline_grace_ms = 800
notify_tick_ms = 100
log_level = "warn"
metrics_listen = ""
metrics_token = "e2e-metrics-token"
[sms]
provider = "log"
[[channels]]
id = "acme"
secret = "acme-secret-0123456789"
sms_delay_s = 2
ack_timeout_s = 1
quiet_hours = "off"
sms_min_interval_s = 0
manager_send_burst = 1000
`);
  await startServer();
  browser = await launch();
  fs.mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) await stopServer();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function chatWith(user, phone = null) {
  if (phone) await api('PUT', `/v1/users/${user}`, { name: user[0].toUpperCase() + user.slice(1), phone, sms_opt_in: true });
  return (await api('POST', '/v1/user-chats', { user_id: user })).chat_id;
}

async function send(deskPage, chatId, text) {
  await deskPage.click(`li[data-chat="${chatId}"] button`);
  await deskPage.fill('#text', text);
  await deskPage.click('#send');
}

test('presence: the desk sees a widget come online within 1 s and go offline after the grace', async () => {
  await chatWith('uma');
  const d = await desk();
  await d.waitForSelector('li[data-user="uma"] .dot.off');
  const w = await widget('uma');
  const t0 = Date.now();
  await d.waitForSelector('li[data-user="uma"] .dot.on', { timeout: 1000 });
  assert.ok(Date.now() - t0 <= 1000);
  await w.waitForSelector('#status[data-state="online"]');
  await w.close();
  const closed = Date.now();
  await d.waitForSelector('li[data-user="uma"] .dot.off', { timeout: 3000 });
  assert.ok(Date.now() - closed >= 600, 'offline before the grace');
  assert.deepEqual(d.errors, []);
  await d.close();
});

test('messages: manager sends, the widget shows it, the desk shows delivered then read', async () => {
  const chat = await chatWith('vic');
  const d = await desk();
  const w = await widget('vic');
  await w.waitForSelector('#status[data-state="online"]');
  await d.waitForSelector(`li[data-chat="${chat}"]`);
  await send(d, chat, 'Your parcel left the warehouse today.');
  await w.waitForSelector('.msg.theirs >> text=Your parcel left the warehouse today.');
  // The widget acks on receipt and reads while visible: the desk ends at "read".
  await d.waitForSelector('.msg.mine .delivery[data-delivery^="read"]', { timeout: 5000 });
  // The user answers; it appears on the desk live.
  await w.fill('#text', 'Great, thanks!');
  await w.press('#text', 'Enter');
  await d.waitForSelector('.msg.theirs >> text=Great, thanks!');
  await w.screenshot({ path: path.join(shots, 'widget.png') });
  await d.screenshot({ path: path.join(shots, 'desk.png') });
  assert.deepEqual(d.errors, []);
  assert.deepEqual(w.errors, []);
  await w.close();
  await d.close();
});

// Receipts are paced per session (burst 100): a widget that acked and read
// every replayed message one by one was refused past the burst, showed the
// refusals, and was cut for too many of them. It sends marks now.
test('a widget back after 150 missed messages shows them all, stays connected, and the desk sees them read', async () => {
  const chat = await chatWith('una');
  for (let i = 1; i <= 150; ++i) await api('POST', `/v1/user-chats/${chat}/messages`, { text: `Update ${i}` });
  const refused = await metric('onlined_refusals_total{code="rate_limited"}');
  const cut = await metric('onlined_refusals_total{code="too_many_errors"}');
  const d = await desk();
  await d.waitForSelector(`li[data-chat="${chat}"]`);
  await d.click(`li[data-chat="${chat}"] button`);
  const w = await widget('una');
  await w.waitForSelector('#status[data-state="online"]');
  await w.waitForSelector('.msg.theirs >> text=Update 150');
  await d.waitForSelector('.msg.mine[data-seq="150"] .delivery[data-delivery^="read"]', { timeout: 5000 });
  await new Promise((r) => setTimeout(r, 1500));  // a refusal or a cut would have come by now
  assert.equal(await w.locator('.msg.theirs').count(), 150);
  assert.equal(await w.getAttribute('#status', 'data-state'), 'online');
  assert.equal(await w.isHidden('#banner'), true, await w.textContent('#banner-text'));
  assert.equal(await metric('onlined_refusals_total{code="rate_limited"}') - refused, 0, 'receipts refused');
  assert.equal(await metric('onlined_refusals_total{code="too_many_errors"}') - cut, 0, 'the widget was cut');
  assert.deepEqual(w.errors, []);
  await w.close();
  await d.close();
});

test('a user whose id is an e-mail address: the desk shows the history and the SMS', async () => {
  const user = 'ida@example.com';
  await api('PUT', `/v1/users/${encodeURIComponent(user)}`, { name: 'Ida', phone: '+15550100002', sms_opt_in: true });
  const chat = (await api('POST', '/v1/user-chats', { user_id: user })).chat_id;
  const d = await desk();
  await d.waitForSelector(`li[data-chat="${chat}"]`);
  await send(d, chat, 'Your refund is on its way.');
  await d.waitForSelector('.msg.mine >> text=Your refund is on its way.');
  await d.waitForSelector('.msg.mine .delivery[data-delivery*="SMS scheduled"]', { timeout: 5000 });
  assert.equal(await d.isVisible('#banner'), false, 'the desk shows an error');
  assert.deepEqual(d.errors, []);
  await d.close();
});

test('the token leaves the address bar, and a reload of the tab finds it again', async () => {
  const chat = await chatWith('jon');
  const w = await widget('jon');
  await w.waitForSelector('#status[data-state="online"]');
  assert.ok(!w.url().includes('token='), w.url());
  const d = await desk();
  await d.waitForSelector(`li[data-chat="${chat}"]`);
  assert.ok(!d.url().includes('token='), d.url());
  await send(d, chat, 'Still there after a reload?');
  await w.waitForSelector('.msg >> text=Still there after a reload?');
  await w.reload();
  await w.waitForSelector('#status[data-state="online"]');
  await d.reload();
  await d.waitForSelector(`li[data-chat="${chat}"]`);
  await send(d, chat, 'Yes, after the reload.');
  await w.waitForSelector('.msg >> text=Yes, after the reload.');
  assert.deepEqual(w.errors, []);
  assert.deepEqual(d.errors, []);
  await w.close();
  await d.close();
});

test('sms: with the widget closed, the desk shows the SMS scheduled and then sent', async () => {
  const chat = await chatWith('wes', '+15550100001');
  const d = await desk();
  await d.waitForSelector(`li[data-chat="${chat}"]`);
  await send(d, chat, 'We tried to reach you about your order.');
  await d.waitForSelector('.msg.mine .delivery[data-delivery*="SMS scheduled"]', { timeout: 5000 });
  await d.waitForSelector('.msg.mine .delivery[data-delivery*="SMS sent"]', { timeout: 8000 });
  await d.screenshot({ path: path.join(shots, 'desk-sms.png') });
  await d.close();
});

test('html from users is shown as text, never run', async () => {
  const chat = await chatWith('xen');
  const d = await desk();
  const w = await widget('xen');
  await w.waitForSelector('#status[data-state="online"]');
  const evil = '<img src=x onerror="window.__xss=1">';
  await w.fill('#text', evil);
  await w.press('#text', 'Enter');
  await d.waitForSelector(`li[data-chat="${chat}"] .preview >> text=${evil}`);
  await d.click(`li[data-chat="${chat}"] button`);
  await d.waitForSelector(`.msg.theirs >> text=${evil}`);
  assert.equal(await d.evaluate(() => window.__xss), undefined);
  assert.equal(await w.evaluate(() => window.__xss), undefined);
  assert.equal(await d.locator('.messages img').count(), 0);
  await w.close();
  await d.close();
});

test('an expired token gets a visible, human message', async () => {
  const expiring = token('user', 'old', 1);
  await new Promise((r) => setTimeout(r, 1100));  // now it has expired
  const w = await page(`${base()}/widget#token=${expiring}`);
  await w.waitForSelector('#banner:not([hidden]) >> text=/expired/', { timeout: 5000 });
  const d = await page(`${base()}/desk#token=not-a-token`);
  await d.waitForSelector('#banner:not([hidden])', { timeout: 5000 });
  await w.close();
  await d.close();
});

test('a desk whose page hands out fresh tokens outlives its first token; one without goes', async () => {
  await chatWith('rita');
  // The page's backend, played by the test: window.onlinedGetToken asks it
  // for a new 3-second manager token each time.
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  let minted = 0;
  await ctx.exposeFunction('mintForTest', () => {
    minted += 1;
    return token('manager', 'maria', 3);
  });
  await ctx.addInitScript(() => { window.onlinedGetToken = () => window.mintForTest(); });
  const d = await ctx.newPage();
  d.errors = [];
  d.on('pageerror', (e) => d.errors.push(e));
  await d.goto(`${base()}/desk#token=${token('manager', 'maria', 3)}`);
  await d.waitForSelector('li[data-user="rita"] .dot.off');
  // A desk without the hook, on the same short token, is ended at its exp.
  const plain = await page(`${base()}/desk#token=${token('manager', 'maria', 3)}`);
  await new Promise((r) => setTimeout(r, 7000));  // two lifetimes of a token
  await plain.waitForSelector('#banner:not([hidden]) >> text=/expired/', { timeout: 3000 });
  assert.ok(minted >= 2, `the page was asked for ${minted} tokens`);
  const w = await widget('rita');
  await d.waitForSelector('li[data-user="rita"] .dot.on', { timeout: 3000 });
  assert.equal(await d.isVisible('#banner'), false, 'the refreshed desk shows a banner');
  assert.deepEqual(d.errors, []);
  await w.close();
  await plain.close();
  await ctx.close();
});

test('a server restart under an open widget and desk loses and doubles nothing', async () => {
  const chat = await chatWith('yan');
  const d = await desk();
  const w = await widget('yan');
  await w.waitForSelector('#status[data-state="online"]');
  await d.waitForSelector(`li[data-chat="${chat}"]`);
  await send(d, chat, 'before restart');
  await w.waitForSelector('.msg >> text=before restart');
  await stopServer();
  await w.waitForSelector('#status:not([data-state="online"])');
  // Sent while the server is down? Impossible; but one sent right after it is back must arrive once.
  await startServer();
  await w.waitForSelector('#status[data-state="online"]', { timeout: 15000 });
  await d.waitForSelector('#status[data-state="online"]', { timeout: 15000 });
  await api('POST', `/v1/user-chats/${chat}/messages`, { text: 'after restart' });
  await w.waitForSelector('.msg >> text=after restart');
  await d.waitForSelector('.msg >> text=after restart');
  const texts = await w.$$eval('.msg .text', (els) => els.map((e) => e.textContent));
  assert.deepEqual(texts, ['before restart', 'after restart']);
  const deskTexts = await d.$$eval('.msg .text', (els) => els.map((e) => e.textContent));
  assert.deepEqual(deskTexts, ['before restart', 'after restart']);
  await w.close();
  await d.close();
});
