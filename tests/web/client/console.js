// console.js - tests/web/web_itest's browser scenario: the gateway's
// /app/ files over raw HTTP, then the console in headless Chromium
// (Debian's /usr/bin/chromium through playwright-core) against the real
// system. Exits non-zero on the first failed check. Environment: GW (the
// gateway's base URL), OUT (directory for screenshots).
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { chromium } = require('playwright-core');

const GW = process.env.GW;
const OUT = process.env.OUT || '.run/test-logs/web_itest';
const WAIT = 20000; // generous: a loaded 2-core machine; never a speed claim
const PASSWORD = 'correct horse battery';

function log(...a) { console.log('[console.js]', ...a); }

// A raw request: the path is sent exactly as written (fetch would
// normalise "..").
function raw(method, p, headers = {}) {
  const u = new URL(GW);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers },
      (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      });
    req.on('error', reject);
    req.end();
  });
}

async function api(method, p, body, token, extra = {}) {
  const headers = { ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(GW + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function staticFiles() {
  const idx = await raw('GET', '/app/');
  assert.equal(idx.status, 200);
  assert.match(idx.headers['content-type'], /^text\/html/);
  const csp = idx.headers['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self';/);
  assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+\/v1\/realtime;/);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(idx.headers['x-content-type-options'], 'nosniff');
  assert.equal(idx.headers['referrer-policy'], 'no-referrer');
  assert.equal(idx.headers['cache-control'], 'no-cache');
  assert.ok(idx.headers.etag);
  const again = await raw('GET', '/app/index.html', { 'If-None-Match': idx.headers.etag });
  assert.equal(again.status, 304);
  assert.equal(again.body, '');
  const js = await raw('GET', '/app/app.js');
  assert.equal(js.status, 200);
  assert.match(js.headers['content-type'], /^text\/javascript/);
  const cfg = await raw('GET', '/app/config.json');
  assert.match(JSON.parse(cfg.body).realtime_url, /^ws:\/\/127\.0\.0\.1:\d+\/v1\/realtime$/);
  for (const p of ['/app/../services/gateway/gateway.c', '/app/%2e%2e/README.md',
                   '/app/..%2fREADME.md', '/app/nope.js', '/app/index.html/',
                   '/app//index.html', '/app/.gitignore']) {
    const r = await raw('GET', p);
    assert.equal(r.status, 404, `${p} -> ${r.status}`);
    assert.equal(r.headers['content-type'], 'application/json');
  }
  const post = await raw('POST', '/app/');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  log('static files: ok');
}

async function setup() {
  const slug = `web-${Date.now().toString(36)}`;
  const t = await api('POST', '/v1/tenants', {
    name: 'Web Bistro', slug,
    owner: { email: `owner@${slug}.test`, password: PASSWORD, name: 'Owner' },
  });
  assert.equal(t.status, 201, JSON.stringify(t.json));
  const s = { slug };
  const member = async (name, role = 'admin') => {
    const m = await api('POST', '/v1/tenant/members', {
      email: `${name}@${slug}.test`, name, password: PASSWORD, role,
    }, await owner(s));
    assert.equal(m.status, 201, JSON.stringify(m.json));
    return m.json.user;
  };
  s.chef = await member('chef');
  s.sous = await member('sous');
  s.line = await member('line', 'staff');
  const p = await api('POST', '/v1/products', {
    name: 'Soup <b>of the day</b>', category: 'starters', price_cents: 650, stock: 10,
  }, await owner(s));
  assert.equal(p.status, 201, JSON.stringify(p.json));
  s.product = p.json;
  return s;
}

// The owner's token from a fresh login: the system runs with 15 s access
// tokens (AUTH_ACCESS_TTL) so that the page refreshes during the test.
async function owner(s) {
  const r = await api('POST', '/v1/auth/login', { email: `owner@${s.slug}.test`, password: PASSWORD },
                      undefined, { 'X-Tenant': s.slug });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.access_token;
}

async function placeOrder(s, quantity) {
  const o = await api('POST', '/v1/orders', {
    items: [{ product_id: s.product.id, quantity }], notes: '<img src=x onerror=alert(1)>',
  }, await owner(s));
  assert.equal(o.status, 201, JSON.stringify(o.json));
  return o.json;
}

// The page's realtime connections pass through a proxy in the test
// (page.routeWebSocket): frames go unchanged to the real realtime server
// and back, and are recorded; the test can drop a connection, hold a
// reconnect back from the server, or alter the page's frames.
function realtimeProxy(page) {
  const px = { conns: [], hold: null, tamper: null, swallowClose: false };
  return page.routeWebSocket(/\/v1\/realtime$/, async (ws) => {
    const c = { ws, server: null, pending: [], fromPage: [], fromServer: [] };
    px.conns.push(c);
    ws.onMessage((m) => {
      let f = JSON.parse(m);
      if (px.tamper) f = px.tamper(f);
      if (f === null) return; // dropped
      c.fromPage.push(f);
      if (c.server) c.server.send(JSON.stringify(f));
      else c.pending.push(JSON.stringify(f));
    });
    const passable = (code) => code === 1000 || (code >= 3000 && code <= 4999);
    ws.onClose((code) => {
      if (c.server && !c.serverClosed) c.server.close(passable(code) ? { code } : {}).catch(() => {});
    });
    if (px.hold) await px.hold;
    c.server = ws.connectToServer();
    c.server.onMessage((m) => { c.fromServer.push(JSON.parse(m)); ws.send(m); });
    c.server.onClose((code, reason) => {
      c.serverClosed = true;
      c.closeCode = code;
      if (!px.swallowClose) ws.close(passable(code) ? { code, reason } : {});
    });
    for (const f of c.pending) c.server.send(f);
  }).then(() => px);
}

// Drops the page's live connection (close 4000: not an auth failure, so
// the page reconnects), places an order while the reconnect is held back
// from the server, then lets it through.
async function dropAndOrder(page, px, s, quantity) {
  let release;
  px.hold = new Promise((r) => { release = r; });
  const before = px.conns.length;
  await px.conns[before - 1].ws.close({ code: 4000, reason: 'test: connection lost' });
  await page.waitForSelector('#live:not(.on)', { timeout: WAIT });
  const deadline = Date.now() + WAIT;
  while (px.conns.length === before && Date.now() < deadline) await sleep(50);
  assert.ok(px.conns.length > before, 'the page did not reconnect');
  const order = await placeOrder(s, quantity);
  px.hold = null;
  release();
  return { order, conn: px.conns[px.conns.length - 1] };
}

async function waitFor(cond, what) {
  const deadline = Date.now() + 40000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// A webhook to a receiver of this script that refuses (500) until
// accept() is called, and its webhook.test delivery, dead after the one
// attempt the system is configured for.
async function deadDelivery(s) {
  let ok = false;
  const hits = [];
  const recv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.headers['webhook-id']) hits.push(ok);
      res.statusCode = ok ? 204 : 500;
      res.end();
    });
  });
  await new Promise((r) => { recv.listen(0, '127.0.0.1', r); });
  recv.unref();
  const url = `http://127.0.0.1:${recv.address().port}/hook`;
  const wh = await api('POST', '/v1/webhooks', { url, events: ['OrderCreated'] }, await owner(s));
  assert.equal(wh.status, 201, JSON.stringify(wh.json));
  const t = await api('POST', `/v1/webhooks/${wh.json.id}/test`, undefined, await owner(s));
  assert.equal(t.status, 202, JSON.stringify(t.json));
  await waitFor(async () => {
    const d = await api('GET', `/v1/webhooks/${wh.json.id}/deliveries?status=dead`, undefined, await owner(s));
    return d.json.deliveries.length === 1;
  }, 'the refused delivery never went dead');
  return { id: wh.json.id, url, hits, accept: () => { ok = true; } };
}

// A device registered over HTTP and its session (a device token).
async function newDevice(s) {
  const d = await api('POST', '/v1/sync/devices', { name: 'Till <i>2</i>', platform: 'linux' },
                      await owner(s));
  assert.equal(d.status, 201, JSON.stringify(d.json));
  const ses = await api('POST', `/v1/sync/devices/${d.json.device.id}/session`,
                        { device_secret: d.json.device_secret }, undefined, { 'X-Tenant': s.slug });
  assert.equal(ses.status, 200, JSON.stringify(ses.json));
  return { dev: d.json.device, token: ses.json.access_token };
}

async function beat(token) {
  const hb = await api('POST', '/v1/sync/heartbeat', { app_version: '4.5.6', pending: 0 }, token);
  assert.equal(hb.status, 200, JSON.stringify(hb.json));
  assert.equal(hb.json.interval_s, 2); // SYNC_HEARTBEAT_INTERVAL here
}

// Devices: the section is live on devices.<tenant>; a device that comes
// online (it beats every second, as told) appears without a reload of
// the list over HTTP, and when its beats stop it turns offline (twice
// the 2 s interval) on the page, still without a reload.
async function devicesSection(page, s) {
  await page.getByRole('button', { name: 'Devices' }).click();
  await page.waitForSelector('#devices-live.on', { timeout: WAIT });
  await page.waitForFunction(() => Number(document.getElementById('devices').dataset.reloads) > 0,
                             null, { timeout: WAIT });
  const loads = await page.getAttribute('#devices', 'data-reloads');
  let listed = 0;
  page.on('request', (r) => { if (/\/v1\/sync\/devices$/.test(r.url())) listed++; });
  const { dev, token } = await newDevice(s);
  const row = `#devices tr[data-device-id="${dev.id}"][data-status="online"]`;
  let beating = true;
  const beats = (async () => {
    while (beating) { await beat(token); await sleep(1000); }
  })();
  try {
    await page.waitForSelector(row, { timeout: WAIT });
  } finally {
    beating = false;
    await beats;
  }
  const text = await page.textContent(row);
  assert.match(text, /Till <i>2<\/i>/); // text, not markup
  assert.match(text, /linux/);
  assert.match(text, /4\.5\.6/);
  assert.doesNotMatch(text, /never/); // last seen is set
  assert.equal(listed, 0, 'the device list was read again over HTTP');
  assert.equal(await page.getAttribute('#devices', 'data-reloads'), loads);
  await page.screenshot({ path: path.join(OUT, 'devices.png'), fullPage: true });
  await page.waitForSelector(`#devices tr[data-device-id="${dev.id}"][data-status="offline"]`,
                             { timeout: WAIT });
  assert.equal(listed, 0, 'the device list was read again over HTTP');
  return dev;
}

// Campaigns: created and sent from the console to staff and admins; the
// stats move while it is sending and it ends `sent` with one in-app
// message per member of those roles, which the API confirms.
async function campaignsSection(page, s) {
  const members = await api('GET', '/v1/tenant/members', undefined, await owner(s));
  assert.equal(members.status, 200);
  const expected = members.json.members.filter((m) => ['staff', 'admin'].includes(m.role)).length;
  assert.equal(expected, 3); // chef, sous, line
  await page.getByRole('button', { name: 'Campaigns' }).click();
  const name = `Lunch ${Date.now().toString(36)} <b>`;
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Title').fill('Staff lunch');
  await page.getByLabel('Message').fill('Soup at noon.');
  await page.getByLabel('Staff', { exact: true }).check();
  await page.getByLabel('Admins', { exact: true }).check();
  await page.getByRole('button', { name: 'Create campaign' }).click();
  const row = `#campaigns tbody tr:has(th:text-is("${name}"))`;
  await page.waitForSelector(`${row}[data-status="draft"]`, { timeout: WAIT });
  await page.getByRole('button', { name: `Send now: ${name}` }).click();
  await page.waitForSelector(`${row}[data-status="sent"]`, { timeout: WAIT });
  const id = await page.getAttribute(row, 'data-campaign-id');
  const cells = await page.$$eval(`${row} td`, (tds) => tds.map((t) => t.textContent));
  assert.equal(cells[2], 'staff, admin');
  assert.deepEqual(cells.slice(3, 6), [String(expected), String(expected), '0'], cells.join('|'));
  const c = await api('GET', `/v1/campaigns/${id}`, undefined, await owner(s));
  assert.equal(c.status, 200);
  assert.equal(c.json.status, 'sent');
  assert.equal(c.json.name, name);
  assert.deepEqual(c.json.channels, ['in_app']);
  assert.deepEqual(c.json.stats, { targeted: expected, delivered: expected, failed: 0 });
  await page.screenshot({ path: path.join(OUT, 'campaigns.png'), fullPage: true });
  // Deleted from the console: the API no longer has it.
  await page.getByRole('button', { name: `Delete: ${name}` }).click();
  await page.waitForSelector(row, { state: 'detached', timeout: WAIT });
  assert.equal((await api('GET', `/v1/campaigns/${id}`, undefined, await owner(s))).status, 404);
}

// A staff user: devices yes (the one registered above), campaigns not
// offered, and the API refuses them campaigns.
async function staffView(browser, s, dev, errors) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`staff console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`staff: ${e.message}`));
  await page.goto(`${GW}/app/`);
  await page.getByLabel('Restaurant (tenant)').fill(s.slug);
  await page.getByLabel('E-mail').fill(`line@${s.slug}.test`);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('#live.on', { timeout: WAIT });
  assert.equal(await page.isHidden('nav button[data-view="campaigns"]'), true);
  assert.equal(await page.getByRole('button', { name: 'Campaigns' }).count(), 0);
  await page.getByRole('button', { name: 'Devices' }).click();
  await page.waitForSelector(`#devices tr[data-device-id="${dev.id}"]`, { timeout: WAIT });
  const r = await api('POST', '/v1/auth/login', { email: `line@${s.slug}.test`, password: PASSWORD },
                      undefined, { 'X-Tenant': s.slug });
  assert.equal((await api('GET', '/v1/campaigns', undefined, r.json.access_token)).status, 403);
  await page.screenshot({ path: path.join(OUT, 'staff.png'), fullPage: true });
  await page.close();
}

const card = (id, status) => `ol[data-status="${status}"] li[data-order-id="${id}"]`;

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  await staticFiles();
  const s = await setup();

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const errors = [];
  let expect401 = false; // the phase where the page's calls are refused
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const px = await realtimeProxy(page);
    // The board's pending list can be held after the server answered it
    // (a real answer, delivered late): a reload racing live publications.
    const list = { hold: null, held: null };
    await page.route(/\/v1\/orders\?status=pending/, async (route) => {
      const gate = list.hold;
      const resp = await route.fetch();
      if (gate) { list.held(); await gate; }
      await route.fulfill({ response: resp });
    });
    let reloads = 0; // the board's reloads over HTTP
    page.on('request', (r) => { if (/\/v1\/orders\?status=pending/.test(r.url())) reloads++; });
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      // Chromium reports every refused fetch as a console error: expected
      // (401) only while the test has revoked the page's session.
      if (expect401 && /status of 401/.test(m.text())) return;
      errors.push(`console: ${m.text()}`);
    });
    const refreshes = []; // statuses of the page's POST /v1/auth/refresh
    page.on('response', (r) => { if (r.url().endsWith('/v1/auth/refresh')) refreshes.push(r.status()); });
    page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
    await page.goto(`${GW}/app/`);

    // Log in (keyboard: the form submits on Enter).
    await page.getByLabel('Restaurant (tenant)').fill(s.slug);
    await page.getByLabel('E-mail').fill(`chef@${s.slug}.test`);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Password').press('Enter');
    await page.waitForSelector('#board-view:not([hidden])', { timeout: WAIT });
    await page.waitForSelector('#live.on', { timeout: WAIT });
    log('logged in, live');

    // A second page (the owner) whose token refreshes never reach the
    // live socket (its proxy drops them): when the first token expires,
    // realtime closes 4001 and that page returns to the login screen. It
    // runs beside the rest of the scenario (checked after the refresh).
    const page2 = await browser.newPage({ viewport: { width: 800, height: 600 } });
    page2.on('console', (m) => { if (m.type() === 'error') errors.push(`page2 console: ${m.text()}`); });
    page2.on('pageerror', (e) => errors.push(`page2: ${e.message}`));
    const px2 = await realtimeProxy(page2);
    px2.tamper = (f) => (f.op === 'refresh' ? null : f);
    await page2.goto(`${GW}/app/`);
    await page2.getByLabel('Restaurant (tenant)').fill(s.slug);
    await page2.getByLabel('E-mail').fill(`owner@${s.slug}.test`);
    await page2.getByLabel('Password').fill(PASSWORD);
    await page2.getByRole('button', { name: 'Log in' }).click();
    await page2.waitForSelector('#live.on', { timeout: WAIT });

    // An order placed over HTTP appears without a reload.
    const order = await placeOrder(s, 2);
    await page.waitForSelector(card(order.id, 'pending'), { timeout: WAIT });
    const text = await page.textContent(card(order.id, 'pending'));
    assert.match(text, /2 × Soup <b>of the day<\/b>/); // shown as text, not markup
    assert.match(text, /<img src=x onerror=alert\(1\)>/);
    await page.waitForFunction(() => /New order/.test(document.getElementById('announce').textContent),
                               null, { timeout: WAIT }); // aria-live
    await page.screenshot({ path: path.join(OUT, 'board-new-order.png'), fullPage: true });
    log('order appeared live');

    // One click advances it; the API agrees.
    await page.click(`${card(order.id, 'pending')} button`);
    await page.waitForSelector(card(order.id, 'confirmed'), { timeout: WAIT });
    const got = await api('GET', `/v1/orders/${order.id}`, undefined, await owner(s));
    assert.equal(got.json.status, 'confirmed');
    log('advanced by click');

    // A change made elsewhere moves the card live.
    const moved = await api('POST', `/v1/orders/${order.id}/status`,
                            { status: 'preparing' }, await owner(s));
    assert.equal(moved.status, 200, JSON.stringify(moved.json));
    await page.waitForSelector(card(order.id, 'preparing'), { timeout: WAIT });
    const second = await placeOrder(s, 1);
    await page.waitForSelector(card(second.id, 'pending'), { timeout: WAIT });
    await page.screenshot({ path: path.join(OUT, 'board.png'), fullPage: true });
    log('live status change');

    // The connection drops; an order placed meanwhile arrives through
    // recovery (offset + epoch), with no reload over HTTP.
    let n = reloads;
    const { order: third, conn } = await dropAndOrder(page, px, s, 1);
    await page.waitForSelector(card(third.id, 'pending'), { timeout: WAIT });
    await page.waitForSelector('#live.on', { timeout: WAIT });
    const sub = conn.fromPage.find((f) => f.op === 'subscribe');
    assert.ok(sub && sub.recover && sub.recover.epoch, // ops only: no token in the log
      JSON.stringify(conn.fromPage.map((f) => ({ op: f.op, recover: f.recover }))));
    const subd = conn.fromServer.find((f) => f.op === 'subscribed');
    assert.equal(subd.recovered, true, JSON.stringify(subd));
    assert.equal(reloads, n, 'recovered, yet the board reloaded');
    log('recovered after a reconnect');

    // When the server cannot recover (here: an epoch it does not know),
    // the board reloads over HTTP and still shows what it missed.
    // While that reload's list (read before a new order) is held, the new
    // order arrives live: the late list must not take it off the board.
    n = reloads;
    const done = Number(await page.getAttribute('#board', 'data-reloads'));
    let releaseList;
    list.hold = new Promise((r) => { releaseList = r; });
    const listHeld = new Promise((r) => { list.held = r; });
    px.tamper = (f) => (f.op === 'subscribe' && f.recover
      ? { ...f, recover: { ...f.recover, epoch: '0000000000000000' } } : f);
    const { order: fourth, conn: conn2 } = await dropAndOrder(page, px, s, 1);
    await listHeld;
    const racing = await placeOrder(s, 1);
    await page.waitForSelector(card(racing.id, 'pending'), { timeout: WAIT });
    list.hold = null;
    releaseList();
    await page.waitForFunction((d) => Number(document.getElementById('board').dataset.reloads) > d,
                               done, { timeout: WAIT });
    assert.ok(await page.isVisible(card(fourth.id, 'pending')), 'the reload lost what it listed');
    assert.ok(await page.isVisible(card(racing.id, 'pending')), 'the reload dropped a live order');
    px.tamper = null;
    assert.equal(conn2.fromServer.find((f) => f.op === 'subscribed').recovered, false);
    assert.ok(reloads > n, 'not recovered, yet the board did not reload');
    log('reloaded over HTTP when not recovered');

    // The menu shows the stock the orders took (10 - 2 - 1 - 1 - 1 - 1).
    await page.getByRole('button', { name: 'Menu' }).click();
    const row = `#menu tr[data-product-id="${s.product.id}"]`;
    await page.waitForSelector(row, { timeout: WAIT });
    await page.waitForFunction((sel) => {
      const r = document.querySelector(sel);
      return r && r.cells[3].textContent === '4';
    }, row, { timeout: WAIT });
    await page.getByRole('button', { name: 'Board' }).click();

    // Webhooks: a delivery the receiver refused is dead; the console
    // shows it and retries it, and this time the receiver accepts.
    const { id: hookId, url: hookUrl, hits, accept } = await deadDelivery(s);
    await page.getByRole('button', { name: 'Webhooks' }).click();
    await page.getByRole('button', { name: new RegExp(`^${hookUrl.replace(/[.]/g, '\\.')}`) }).click();
    const dead = '#deliveries tbody tr';
    await page.waitForSelector(`${dead}:has-text("webhook.test")`, { timeout: WAIT });
    assert.match(await page.textContent(dead), /dead/);
    await page.screenshot({ path: path.join(OUT, 'webhooks-dead.png'), fullPage: true });
    accept();
    await page.getByRole('button', { name: /^Retry delivery of webhook\.test/ }).click();
    await waitFor(async () => {
      const d = await api('GET', `/v1/webhooks/${hookId}/deliveries`, undefined, await owner(s));
      return d.json.deliveries.some((x) => x.event_type === 'webhook.test' && x.status === 'succeeded');
    }, 'the retried delivery never succeeded');
    assert.deepEqual(hits.slice(0, 2), [false, true]); // refused once, then accepted
    await page.waitForSelector(`${dead}:has-text("webhook.test")`, { state: 'detached', timeout: WAIT });
    await page.getByRole('button', { name: 'Board' }).click();
    log('dead delivery retried from the console');

    const dev = await devicesSection(page, s);
    log('device online, live');
    await campaignsSection(page, s);
    log('campaign sent from the console');
    await staffView(browser, s, dev, errors);
    await page.getByRole('button', { name: 'Board' }).click();
    log('staff: devices, no campaigns');

    // The access token (15 s here) was refreshed before it expired, over
    // HTTP and on the live connection, which stays authenticated.
    await waitFor(() => refreshes.includes(200), 'no refresh of the access token');
    await waitFor(() => px.conns.some((c) => c.fromServer.some((f) => f.op === 'refreshed')),
                  'the live connection never got the new token');
    await sleep(4000); // past the first token's expiry: the socket must not close 4001
    const fifth = await placeOrder(s, 1);
    await page.waitForSelector(card(fifth.id, 'pending'), { timeout: WAIT });
    assert.ok(await page.isVisible('#board-view'));
    log('token refreshed, still live');
    await page2.waitForSelector('#login-view:not([hidden])', { timeout: 40000 });
    assert.match(await page2.textContent('#status'), /expired/);
    assert.equal(px2.conns[px2.conns.length - 1].closeCode, 4001);
    await page2.close();
    log('expired token on the live socket (4001) returned to login');

    // Tokens only in memory.
    const stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
    assert.equal(stored, 0);

    // The owner removes the chef from another session: the page's token
    // is revoked and the page returns to the login screen.
    const del = await api('DELETE', `/v1/tenant/members/${s.chef.id}`, undefined, await owner(s));
    assert.equal(del.status, 204, JSON.stringify(del.json));
    await page.waitForSelector('#login-view:not([hidden])', { timeout: WAIT });
    assert.match(await page.textContent('#status'), /revoked/);
    assert.equal(await page.isHidden('#board-view'), true);
    assert.equal(await page.isHidden('#nav'), true);
    assert.equal(await page.inputValue('#password'), '');
    await page.screenshot({ path: path.join(OUT, 'after-revocation.png'), fullPage: true });
    log('revocation returned to login');

    // A revocation whose close frame never reaches the page (the proxy
    // swallows it): the next HTTP call is refused, the refresh too, and
    // the page returns to the login screen all the same.
    await page.getByLabel('E-mail').fill(`sous@${s.slug}.test`);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForSelector('#live.on', { timeout: WAIT });
    px.swallowClose = true;
    expect401 = true;
    const sousConn = px.conns[px.conns.length - 1];
    const del2 = await api('DELETE', `/v1/tenant/members/${s.sous.id}`, undefined, await owner(s));
    assert.equal(del2.status, 204);
    await waitFor(() => sousConn.serverClosed, 'realtime never closed the revoked socket');
    // The page never saw that close: its next call (or its refresh timer,
    // whichever comes first) is refused and ends the session.
    // (When the timer won, the menu button is gone: nothing to click.)
    await page.getByRole('button', { name: 'Menu' }).click({ timeout: 3000 }).catch(() => {});
    await page.waitForSelector('#login-view:not([hidden])', { timeout: WAIT });
    assert.match(await page.textContent('#status'), /session has ended/);
    assert.equal(refreshes[refreshes.length - 1], 401);
    px.swallowClose = false;
    expect401 = false;
    log('HTTP 401 + failed refresh returned to login');

    // Phone-sized: the board is one column and still usable.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('E-mail').fill(`owner@${s.slug}.test`);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForSelector(card(second.id, 'pending'), { timeout: WAIT });
    await page.screenshot({ path: path.join(OUT, 'board-phone.png'), fullPage: true });
    // Keyboard only: the card's button is a real button.
    await page.focus(`${card(second.id, 'pending')} button`);
    await page.keyboard.press('Enter');
    await page.waitForSelector(card(second.id, 'confirmed'), { timeout: WAIT });
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForSelector('#login-view:not([hidden])', { timeout: WAIT });
    log('phone layout, logout');
  } finally {
    await browser.close();
  }
  assert.deepEqual(errors, [], `console errors:\n${errors.join('\n')}`);
  log(`ok; screenshots in ${OUT}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
