// The cluster in a browser: `scripts/demo-cluster.sh` (three NATS servers, a
// PostgreSQL, three onlined nodes), the desk on node 1 and a widget on node 2.
// The desk must see the widget go green and get its message, and the widget
// the desk's answer, across processes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { launch, openPage } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const shots = process.env.SCREENSHOT_DIR || path.join(root, 'build', 'screenshots');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onlined-e2e-cluster-'));
const info = path.join(dir, 'demo.json');
let demo;
let browser;
let urls;

// Three free ports in a row for the three nodes.
async function freeRun() {
  const free = (p) => new Promise((resolve) => {
    const s = net.createServer().once('error', () => resolve(false)).listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  for (let tries = 0; tries < 50; ++tries) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if ((await free(p)) && (await free(p + 1)) && (await free(p + 2))) return p;
  }
  throw new Error('no three free ports in a row');
}

before(async () => {
  const port = await freeRun();
  demo = spawn(path.join(root, 'scripts', 'demo-cluster.sh'), [], {
    env: { ...process.env, DEMO_DIR: path.join(dir, 'demo'), DEMO_PORT: String(port), DEMO_JSON: info },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  demo.stderr.on('data', (d) => { err += d; });
  const t0 = Date.now();
  while (!fs.existsSync(info)) {
    if (demo.exitCode !== null) throw new Error(`demo-cluster.sh exited: ${err}`);
    if (Date.now() - t0 > 60000) throw new Error(`demo-cluster.sh did not come up: ${err}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  urls = JSON.parse(fs.readFileSync(info, 'utf8'));
  browser = await launch();
  fs.mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    const exited = new Promise((r) => demo.once('exit', r));
    demo.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const page = (url) => openPage(browser, url);

test('cluster: the desk on node 1 sees a widget on node 2 go green and gets its message', async () => {
  assert.notEqual(new URL(urls.desk).port, new URL(urls.widgets.alice).port, 'two nodes');
  const d = await page(urls.desk);
  await d.waitForSelector('li[data-user="alice"] .dot.off');
  const w = await page(urls.widgets.alice);
  const t0 = Date.now();
  await d.waitForSelector('li[data-user="alice"] .dot.on', { timeout: 2000 });
  const green = Date.now() - t0;
  await w.waitForSelector('#status[data-state="online"]');
  await d.click('li[data-user="alice"] button');
  await w.fill('#text', 'Hello from node 2');
  await w.press('#text', 'Enter');
  await d.waitForSelector('.msg.theirs >> text=Hello from node 2', { timeout: 3000 });
  // The desk answers (through node 1); the widget on node 2 shows it.
  await d.fill('#text', 'Hi Alice, node 1 here.');
  await d.click('#send');
  await w.waitForSelector('.msg.theirs >> text=Hi Alice, node 1 here.', { timeout: 3000 });
  await d.screenshot({ path: path.join(shots, 'desk-cluster.png') });
  await w.screenshot({ path: path.join(shots, 'widget-cluster.png') });
  assert.deepEqual(d.errors, []);
  assert.deepEqual(w.errors, []);
  console.log(`widget on node 2 green on the desk of node 1 after ${green} ms`);
  await w.close();
  await d.waitForSelector('li[data-user="alice"] .dot.off', { timeout: 6000 });
  await d.close();
});
