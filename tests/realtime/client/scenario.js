// scenario.js - the WebSocket side of tests/realtime/realtime_itest.c: a
// real client (the `ws` package) against the realtime service, with the
// tenants, people and orders made over the gateway's HTTP API (fetch).
// Environment: GW (http://127.0.0.1:<port>), WS (ws://127.0.0.1:<port>/v1/realtime),
// WS2 (a second realtime replica on the same Redis and bus, which gets no
// revocation events: it learns of them through Redis), WS2_PID (its pid:
// the scenario kills it with SIGKILL), ADDR_CAP (replica 1's connections per
// address), METRICS (replica 1's /metrics), SEND_QUEUE (replica 1's
// REALTIME_SEND_QUEUE_BYTES), REDIS_PORT (the harness's Redis on 127.0.0.1, to lose a
// channel's keys).
// Exits 0 when every check held, 1 (with the failed check) otherwise; every
// wait is bounded, so it always stops by itself.
'use strict';
const net = require('net');
const WebSocket = require('ws');

const GW = process.env.GW;
const WS = process.env.WS;
const WS2 = process.env.WS2;
const ADDR_CAP = Number(process.env.ADDR_CAP);
const SEND_QUEUE = Number(process.env.SEND_QUEUE);
const WAIT_MS = 15000; // generous: nothing here should take more than 1 s
const PASSWORD = 'correct horse battery';

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

async function http(method, path, body, token, tenant) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (tenant) headers['X-Tenant'] = tenant;
  const r = await fetch(GW + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

// A connection whose messages queue up until a test takes them.
function connect(token, url = WS, opts = {}) {
  const headers = token ? { Authorization: 'Bearer ' + token } : {};
  const ws = new WebSocket(url, { headers, ...opts });
  const c = { ws, queue: [], waiters: [], closed: null };
  c.closedP = new Promise((resolve) => {
    ws.on('close', (code) => { c.closed = code; resolve(code); });
  });
  ws.on('error', () => {});
  ws.on('message', (data) => {
    c.queue.push(JSON.parse(data.toString()));
    c.waiters.splice(0).forEach((w) => w());
  });
  c.opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('close', () => reject(new Error('closed before open')));
  });
  c.send = (v) => ws.send(typeof v === 'string' ? v : JSON.stringify(v));
  return c;
}

// The first queued message matching pred, waiting up to ms.
async function next(c, pred, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const i = c.queue.findIndex(pred);
    if (i >= 0) return c.queue.splice(i, 1)[0];
    const left = end - Date.now();
    if (left <= 0 || c.closed !== null) return null;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, left);
      c.waiters.push(() => { clearTimeout(t); resolve(); });
    });
  }
}

// One Redis command over RESP; resolves with the reply's first line.
function redis(...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(process.env.REDIS_PORT), '127.0.0.1');
    let buf = '';
    s.on('error', reject);
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) { s.end(); resolve(buf.split('\r\n')[0]); }
    });
    s.write(`*${args.length}\r\n` +
      args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''));
  });
}

async function closeCode(c, ms = WAIT_MS) {
  const t = new Promise((resolve) => setTimeout(() => resolve('timeout'), ms));
  return Promise.race([c.closedP, t]);
}

async function tenant(tag) {
  const slug = `rt-${tag}-${Date.now().toString(36)}`;
  const t = await http('POST', '/v1/tenants', {
    name: 'Realtime ' + tag, slug,
    owner: { email: `owner-${tag}@example.com`, password: PASSWORD, name: 'Owner' },
  });
  return { id: t.tenant.id, slug, owner: t.access_token, ownerId: t.user.id };
}

async function login(t, email) {
  const r = await http('POST', '/v1/auth/login', { email, password: PASSWORD }, null, t.slug);
  return { token: r.access_token, id: r.user.id };
}

async function people() {
  const A = await tenant('a');
  const B = await tenant('b');
  await http('POST', '/v1/tenant/members',
    { email: 'staff@example.com', name: 'Sam', password: PASSWORD, role: 'staff' }, A.owner);
  A.staff = await login(A, 'staff@example.com');
  await http('POST', '/v1/auth/register',
    { email: 'cust@example.com', name: 'Cleo', password: PASSWORD }, null, A.slug);
  A.customer = await login(A, 'cust@example.com');
  return { A, B };
}

async function refusedWithout4001() {
  const none = connect(null);
  await none.opened;
  check(await closeCode(none) === 4001, 'no token: closed 4001 after the auth timeout');
  const bad = connect('v4.public.not-a-token');
  check(await closeCode(bad) === 4001, 'bad Bearer token on the upgrade: closed 4001');
  const badFrame = connect(null);
  await badFrame.opened;
  badFrame.send({ op: 'auth', token: 'garbage' });
  check(await closeCode(badFrame) === 4001, 'bad token in the auth frame: closed 4001');
}

async function subscribe(c, id, channel) {
  c.send({ op: 'subscribe', id, channel });
  return next(c, (m) => m.id === id);
}

async function ready(token, url = WS) {
  const c = connect(token, url);
  c.info = await next(c, (m) => m.op === 'ready');
  if (c.info === null) throw new Error('no ready from ' + url);
  return c;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function ask(c, req) {
  c.send(req);
  return next(c, (m) => m.id === req.id);
}

// n orders over HTTP, then their n OrderCreated pubs as `watcher` (still
// subscribed to orders.A) receives them.
async function orders(A, product, n, watcher) {
  const made = await Promise.all(Array.from({ length: n }, () => http('POST', '/v1/orders',
    { items: [{ product_id: product.id, quantity: 1 }] }, A.owner)));
  const seen = [];
  for (let i = 0; i < n; i++) {
    seen.push(await next(watcher, (m) => m.op === 'pub' && m.event.type === 'OrderCreated'));
  }
  check(seen.every((p) => p !== null) &&
        made.every((o) => seen.some((p) => p.event.data.id === o.id)),
        `the ${n} orders arrive live on orders.A`);
  return seen;
}

function consecutive(pubs, from) {
  return pubs.every((p, i) => p.offset === from + i);
}

// Issue 13's recovery: disconnect, five orders, reconnect with recover;
// history; the channel's hash lost -> a new epoch, the old history gone.
async function recovery(A, staff, cust) {
  const chan = 'orders.' + A.id;
  const product = await http('POST', '/v1/products', { name: 'Bread', price_cents: 100, stock: 100000 }, A.owner);
  await next(staff, (m) => m.op === 'pub' && m.event.type === 'ProductChanged' && m.event.data.id === product.id);

  const first = await ready(A.staff.token);
  const s1 = await subscribe(first, 20, chan);
  check(s1 && s1.op === 'subscribed' && s1.recovered === false, 'a second staff connection subscribed; position noted');
  first.ws.close(1000);
  await closeCode(first);

  const live = await orders(A, product, 5, staff);
  const back = await ready(A.staff.token);
  back.send({ op: 'subscribe', id: 21, channel: chan, recover: { offset: s1.offset, epoch: s1.epoch } });
  const r = await next(back, (m) => m.id === 21);
  check(r && r.op === 'subscribed' && r.recovered === true && r.epoch === s1.epoch &&
        r.offset === s1.offset + 5, 'reconnected with recover: recovered, offset + 5, same epoch');
  check(r.publications.length === 5 && consecutive(r.publications, s1.offset + 1) &&
        r.publications.every((p) => p.op === 'pub' && p.channel === chan && p.epoch === s1.epoch &&
                             p.event.type === 'OrderCreated'),
        'exactly the five OrderCreated publications, offsets consecutive');
  live.sort((a, b) => a.offset - b.offset);
  check(JSON.stringify(r.publications) === JSON.stringify(live),
        'recovered publications are byte for byte the live ones, in order');

  back.send({ op: 'subscribe', id: 22, channel: chan, recover: { offset: s1.offset, epoch: s1.epoch } });
  const nothing = await next(back, (m) => m.id === 22); // already subscribed: no repeat
  check(nothing && nothing.recovered === false && nothing.publications.length === 0, 'subscribing again, even with recover, recovers nothing');

  // A recover racing five new orders: each publication exactly once, as
  // recovered or as a pub after the answer.
  const racer = await ready(A.staff.token);
  const racing = orders(A, product, 5, staff);
  await new Promise((resolve) => setTimeout(resolve, 5));
  racer.send({ op: 'subscribe', id: 23, channel: chan, recover: { offset: r.offset, epoch: r.epoch } });
  const rr = await next(racer, (m) => m.id === 23);
  await racing;
  check(rr && rr.recovered === true, 'recover while orders are being created: recovered');
  const got = rr.publications.slice();
  while (got.length < 5) {
    const p = await next(racer, (m) => m.op === 'pub', 5000);
    if (p === null) break;
    got.push(p);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  check(got.length === 5 && consecutive(got, r.offset + 1) && racer.queue.every((m) => m.op !== 'pub'),
        `no gap, no duplicate across the answer (${rr.publications.length} recovered, ${5 - rr.publications.length} live)`);

  const wrong = await ready(A.staff.token);
  wrong.send({ op: 'subscribe', id: 24, channel: chan, recover: { offset: s1.offset, epoch: 'ffffffffffffffff' } });
  const w = await next(wrong, (m) => m.id === 24);
  check(w && w.recovered === false && w.publications.length === 0 && w.epoch === s1.epoch,
        'recover with a wrong epoch: recovered false, no publications');
  wrong.send({ op: 'subscribe', id: 25, channel: 'tables.' + A.id, recover: { offset: 'x' } });
  const bad = await next(wrong, (m) => m.id === 25);
  check(bad && bad.code === 'INVALID_ARGUMENT', 'a malformed recover: INVALID_ARGUMENT');

  back.send({ op: 'history', id: 26, channel: chan, since: { offset: s1.offset, epoch: s1.epoch }, limit: 3 });
  const h = await next(back, (m) => m.id === 26);
  check(h && h.op === 'history' && h.publications.length === 3 && consecutive(h.publications, s1.offset + 1),
        'history since a position with limit 3: the next three');
  back.send({ op: 'history', id: 27, channel: chan, limit: 2 });
  const last = await next(back, (m) => m.id === 27);
  check(last && last.publications.length === 2 && last.publications[1].offset === last.offset,
        'history without since: the last ones');
  cust.send({ op: 'history', id: 28, channel: chan });
  const denied = await next(cust, (m) => m.id === 28);
  check(denied && denied.code === 'PERMISSION_DENIED', 'history by a customer: PERMISSION_DENIED');
  cust.send({ op: 'history', id: 29, channel: 'private.user.' + A.customer.id });
  const denied2 = await next(cust, (m) => m.id === 29);
  check(denied2 && denied2.code === 'PERMISSION_DENIED', 'history by a customer, own channel: PERMISSION_DENIED');

  // The channel's hash lost (its history key left behind on purpose).
  check(await redis('DEL', 'realtime:chan:' + chan) === ':1', "the channel's hash deleted in Redis");
  const lost = await ready(A.staff.token);
  lost.send({ op: 'subscribe', id: 30, channel: chan, recover: { offset: r.offset, epoch: r.epoch } });
  const l = await next(lost, (m) => m.id === 30);
  check(l && l.recovered === false && l.publications.length === 0 && l.epoch !== r.epoch && l.offset === 0,
        'hash lost: recovered false, a new epoch, offsets from 0');
  check(await redis('EXISTS', 'realtime:hist:' + chan) === ':0', "the old epoch's history went with it");
  lost.send({ op: 'history', id: 31, channel: chan });
  const none = await next(lost, (m) => m.id === 31);
  check(none && none.publications.length === 0 && none.epoch === l.epoch, 'no history of the old epoch under the new one');
  await orders(A, product, 1, lost);
  check(await redis('DEL', 'realtime:chan:' + chan, 'realtime:hist:' + chan) === ':2', "the channel's keys flushed");
  const flushed = await ready(A.staff.token);
  flushed.send({ op: 'subscribe', id: 32, channel: chan, recover: { offset: 0, epoch: l.epoch } });
  const f = await next(flushed, (m) => m.id === 32);
  check(f && f.recovered === false && f.publications.length === 0 && f.epoch !== l.epoch,
        'keys flushed: recovered false');
  [back, racer, wrong, lost, flushed].forEach((c) => c.ws.close(1000));
}

// Presence: shared by the replicas through Redis; staff only.
async function presence(A, staff, staffInfo, cust, other) {
  const chan = 'orders.' + A.id;
  const far = await ready(A.staff.token, WS2);
  const s = await subscribe(far, 40, chan);
  check(s && s.op === 'subscribed', 'a staff connection on replica 2 subscribed to orders.A');
  const p = await ask(staff, { op: 'presence', id: 41, channel: chan });
  check(p && p.op === 'presence' && p.channel === chan &&
        p.clients.some((x) => x.client_id === staffInfo.client_id && x.user_id === A.staff.id) &&
        p.clients.some((x) => x.client_id === far.info.client_id && x.user_id === A.staff.id),
        'presence on replica 1 lists the subscribers of both replicas, with their user ids');
  const d1 = await ask(cust, { op: 'presence', id: 42, channel: chan });
  check(d1 && d1.code === 'PERMISSION_DENIED', 'presence by a customer: PERMISSION_DENIED');
  const d2 = await ask(cust, { op: 'presence', id: 43, channel: 'private.user.' + A.customer.id });
  check(d2 && d2.code === 'PERMISSION_DENIED', 'presence by a customer, own channel: PERMISSION_DENIED');
  const d3 = await ask(other, { op: 'presence', id: 44, channel: chan });
  check(d3 && d3.code === 'PERMISSION_DENIED', 'presence of orders.A by the owner of B: PERMISSION_DENIED');
  await ask(far, { op: 'unsubscribe', id: 45, channel: chan });
  const after = await ask(staff, { op: 'presence', id: 46, channel: chan });
  check(after && !after.clients.some((x) => x.client_id === far.info.client_id) &&
        after.clients.some((x) => x.client_id === staffInfo.client_id),
        'unsubscribed on replica 2: gone from presence');
  far.ws.close(1000);
}

// refresh: same user and tenant only.
async function refresh(A, B) {
  const c = await ready(A.staff.token);
  const again = await login(A, 'staff@example.com');
  const r = await ask(c, { op: 'refresh', id: 50, token: again.token });
  check(r && r.op === 'refreshed' && typeof r.expires_at === 'string' && r.expires_at !== '',
        'refresh with a new token of the same user: refreshed, with expires_at');
  const sub = await subscribe(c, 51, 'orders.' + A.id);
  check(sub && sub.op === 'subscribed', 'the connection carries on after a refresh');
  c.send({ op: 'refresh', id: 52, token: A.customer.token });
  check(await closeCode(c) === 4003, "refresh with another user's token: closed 4003");
  const d = await ready(A.staff.token);
  d.send({ op: 'refresh', id: 53, token: B.owner });
  check(await closeCode(d) === 4003, "refresh with another tenant's token: closed 4003");
  const e = await ready(A.staff.token);
  e.send({ op: 'refresh', id: 54, token: 'v4.public.garbage' });
  check(await closeCode(e) === 4001, 'refresh with a bad token: closed 4001');
}

// Logout and member removal end live sockets with 4003: replica 1 hears of
// them on the bus, replica 2 only through Redis.
async function revocation(A) {
  const who = await login(A, 'staff@example.com');
  const near = await ready(who.token);
  await subscribe(near, 60, 'orders.' + A.id);
  const far = await ready(who.token, WS2);
  await subscribe(far, 61, 'orders.' + A.id);
  const t0 = Date.now();
  await http('POST', '/v1/auth/logout', {}, who.token);
  const c1 = await closeCode(near);
  const ms1 = Date.now() - t0;
  const c2 = await closeCode(far);
  const ms2 = Date.now() - t0;
  check(c1 === 4003, `logout: the live socket on replica 1 closed 4003 (after ${ms1} ms; bus event)`);
  check(c2 === 4003, `logout: the live socket on replica 2 closed 4003 (after ${ms2} ms; Redis only)`);
  const late = connect(who.token);
  check(await closeCode(late) === 4001, 'the logged-out token on a new connection: closed 4001');

  await http('POST', '/v1/tenant/members',
    { email: 'gone@example.com', name: 'Gus', password: PASSWORD, role: 'staff' }, A.owner);
  const gone = await login(A, 'gone@example.com');
  const g1 = await ready(gone.token);
  const g2 = await ready(gone.token, WS2);
  const t1 = Date.now();
  await http('DELETE', '/v1/tenant/members/' + gone.id, undefined, A.owner);
  const r1 = await closeCode(g1);
  const r2 = await closeCode(g2);
  check(r1 === 4003 && r2 === 4003,
        `member removed: live sockets on both replicas closed 4003 (after ${Date.now() - t1} ms)`);
}

// A customer's own orders on private.user.<id>; nothing of another's.
async function privateChannels(A, product) {
  await http('POST', '/v1/auth/register',
    { email: 'cust2@example.com', name: 'Dora', password: PASSWORD }, null, A.slug);
  const c2 = await login(A, 'cust2@example.com');
  const mine = await ready(A.customer.token);
  const ms = await subscribe(mine, 80, 'private.user.' + A.customer.id);
  const theirs = await ready(c2.token);
  await subscribe(theirs, 81, 'private.user.' + c2.id);
  const denied = await subscribe(theirs, 82, 'private.user.' + A.customer.id);
  check(denied && denied.code === 'PERMISSION_DENIED', "a customer on another customer's private channel: PERMISSION_DENIED");
  await http('POST', '/v1/orders', { items: [{ product_id: product.id, quantity: 1 }] }, A.owner);
  const order = await http('POST', '/v1/orders',
    { items: [{ product_id: product.id, quantity: 1 }] }, A.customer.token);
  const shown = await http('GET', '/v1/orders/' + order.id, undefined, A.customer.token);
  const p = await next(mine, (m) => m.op === 'pub' && m.event.type === 'OrderCreated');
  check(p && p.channel === 'private.user.' + A.customer.id && p.event.data.id === order.id &&
        p.offset === ms.offset + 1, "the customer's own order arrives on private.user.<id>, and only it");
  check(JSON.stringify(p.event.data) === JSON.stringify(shown), 'its data is exactly GET /v1/orders/{id}');
  await http('POST', `/v1/orders/${order.id}/status`, { status: 'confirmed' }, A.owner);
  const shown2 = await http('GET', '/v1/orders/' + order.id, undefined, A.customer.token);
  const q = await next(mine, (m) => m.op === 'pub' && m.event.type === 'OrderStatusChanged');
  check(q && q.offset === p.offset + 1 && JSON.stringify(q.event.data) === JSON.stringify(shown2),
        'its status change follows, data as GET /v1/orders/{id}');
  await sleep(500);
  check(theirs.queue.every((m) => m.op !== 'pub') && mine.queue.every((m) => m.op !== 'pub'),
        "another customer got nothing of it; an order without a customer went to no private channel");
  [mine, theirs].forEach((c) => c.ws.close(1000));
}

// Two replicas on one Redis and bus; kill -9 of replica 2.
async function replicas(A, product) {
  const chan = 'orders.' + A.id;
  const near = await ready(A.staff.token);
  const s1 = await subscribe(near, 70, chan);
  const far = await ready(A.staff.token, WS2);
  const s2 = await subscribe(far, 71, chan);
  const far2 = await ready(A.owner, WS2);
  await subscribe(far2, 72, 'kitchen.' + A.id);
  check(s1.epoch === s2.epoch && s1.offset === s2.offset, 'both replicas give the same offset and epoch');
  const onNear = await orders(A, product, 3, near);
  const onFar = [];
  for (let i = 0; i < 3; i++) onFar.push(await next(far, (m) => m.op === 'pub' && m.event.type === 'OrderCreated'));
  const key = (l) => JSON.stringify(l.slice().sort((a, b) => a.offset - b.offset));
  check(onFar.every((x) => x !== null) && key(onNear) === key(onFar),
        'clients on both replicas get every publication, same offsets, same bytes');
  const lastFar = Math.max(...onFar.map((x) => x.offset));

  process.kill(Number(process.env.WS2_PID), 'SIGKILL');
  check(await closeCode(far) === 1006 && await closeCode(far2) === 1006, 'replica 2 killed -9: its clients are cut');
  const missed = await orders(A, product, 4, near);
  missed.sort((a, b) => a.offset - b.offset);
  check(consecutive(missed, lastFar + 1), "replica 1's client lost nothing: the next four offsets, no gap");
  const back = await ready(A.staff.token);
  const r = await ask(back, { op: 'subscribe', id: 73, channel: chan, recover: { offset: lastFar, epoch: s2.epoch } });
  check(r && r.recovered === true && JSON.stringify(r.publications) === JSON.stringify(missed),
        'a client of the dead replica reconnects to the survivor with recover: exactly the four it missed');

  const gone = [far.info.client_id, far2.info.client_id];
  let left = true;
  let p = null;
  for (const end = Date.now() + WAIT_MS; left && Date.now() < end; await sleep(500)) {
    p = await ask(near, { op: 'presence', id: 74 + Math.floor(Math.random() * 1e6), channel: chan });
    left = p === null || p.clients.some((x) => gone.includes(x.client_id));
  }
  check(!left, "the dead replica's clients vanish from presence when their heartbeat expires");
  // near subscribed before far did: only the survivor's heartbeat keeps it.
  check(p.clients.some((x) => x.client_id === near.info.client_id),
        "the survivor's client, as old, stays present (its heartbeat runs)");
  [near, back].forEach((c) => c.ws.close(1000));
}

// More connections from one address than replica 1's cap: the rest refused.
// WS2 runs with REALTIME_PING_IDLE=2s: a silent client is pinged after
// 2 s and dropped (no close frame: 1006) 4 s after its last frame unless
// it answered; `ws` answers pings by itself unless autoPong is off.
async function liveness(A) {
  const alive = await ready(A.owner, WS2);
  let pings = 0;
  alive.ws.on('ping', () => { pings++; });
  const mute = connect(A.owner, WS2, { autoPong: false });
  check(await next(mute, (m) => m.op === 'ready') !== null, 'a client that will not answer pings: ready');
  check(await closeCode(mute) === 1006, 'a client that answers no ping is dropped (1006)');
  await sleep(3000); // past when the answering client would be dropped too
  check(alive.closed === null && pings >= 1,
        `a client that answers pings stays open (${pings} pings)`);
  alive.ws.close(1000);
  await closeCode(alive);
}

async function addressCap() {
  const n = ADDR_CAP + 5;
  const conns = Array.from({ length: n }, () => connect(null));
  const got = await Promise.all(conns.map((c) => c.opened.then(() => 'open', () => 'refused')));
  const open = got.filter((x) => x === 'open').length;
  check(open <= ADDR_CAP && got.includes('refused'),
        `${n} connections from one address: ${open} open (cap ${ADDR_CAP}), the rest refused`);
  conns.forEach((c) => c.ws.terminate());
  await Promise.all(conns.map((c) => closeCode(c)));
  let ok = false;
  for (const end = Date.now() + WAIT_MS; !ok && Date.now() < end; await sleep(200)) {
    const c = connect(null);
    ok = await c.opened.then(() => true, () => false);
    c.ws.terminate();
  }
  check(ok, 'once they closed, the address may connect again');
}

// Slow-client protection (issue 13): replica 1 runs with
// REALTIME_SEND_QUEUE_BYTES=SEND_QUEUE. Two staff-side clients of a fresh
// tenant subscribe to its orders channel; one then stops reading (its TCP
// socket paused: the kernel's buffers fill, then the server's queue). Big
// publications (a product whose name, description and category are
// 4-byte characters, ~9 KB per ProductChanged) are made by PATCHing its
// price until the replica reports a slow close in its metrics; then the
// paused client reads again and must see close 4008, after a gap-free
// prefix of the publications, while the reading client got every one of
// them, in order. Bounded by the patches' count and WAIT_MS waits only.
async function slowClient() {
  const C = await tenant('slow');
  const chan = 'orders.' + C.id;
  const reader = await ready(C.owner);
  const rs = await subscribe(reader, 90, chan);
  const slow = await ready(C.owner);
  const ss = await subscribe(slow, 91, chan);
  check(rs && rs.op === 'subscribed' && ss && ss.op === 'subscribed' && rs.offset === ss.offset,
        'slow client: two clients subscribed to a fresh orders channel');
  slow.ws._socket.pause(); // stops reading: nothing leaves the kernel's buffer
  const big = (n) => '\u{1F35E}'.repeat(n); // 4 bytes each in UTF-8
  const product = await http('POST', '/v1/products',
    { name: big(200), description: big(2000), category: big(100), price_cents: 100 }, C.owner);
  const before = await metric('realtime_slow_closes_total');
  let patches = 0;
  const MAX_PATCHES = 900; // the tenant's rate bucket is 1000
  while (patches < MAX_PATCHES && await metric('realtime_slow_closes_total') === before) {
    await Promise.all(Array.from({ length: 10 }, (_, i) => http('PATCH', '/v1/products/' + product.id,
      { price_cents: 101 + patches + i }, C.owner)));
    patches += 10;
  }
  check(await metric('realtime_slow_closes_total') > before,
        `the replica closed a slow client after ${patches} publications of ~9 KB (queue limit ${SEND_QUEUE} B)`);

  const want = patches + 1; // the product's creation, then each PATCH
  const got = [];
  while (got.length < want) {
    const p = await next(reader, (m) => m.op === 'pub');
    if (p === null) break;
    got.push(p);
  }
  check(got.length === want && consecutive(got, rs.offset + 1) &&
        got.every((p, i) => p.event.type === 'ProductChanged' && p.event.data.id === product.id &&
                  (i === 0 || p.event.data.version === got[i - 1].event.data.version + 1)),
        `the reading client got all ${want} publications, in order (offsets and versions consecutive)` +
        (got.length === want ? '' : `: got ${got.length}, closed ${reader.closed}`));
  check(reader.closed === null, 'the reading client stays open');

  slow.ws._socket.resume(); // reads what the kernel kept, then the close
  const code = await closeCode(slow);
  const pubs = slow.queue.filter((m) => m.op === 'pub');
  check(code === 4008, `the client that stopped reading is closed 4008 (after ${pubs.length} publications)`);
  check(pubs.length < want && consecutive(pubs, ss.offset + 1),
        'what it was sent before the close is a gap-free prefix');
  reader.ws.close(1000);
  await closeCode(reader);
}

async function main() {
  const { A, B } = await people();
  const refusals = refusedWithout4001();

  const staff = connect(A.staff.token);
  const ready = await next(staff, (m) => m.op === 'ready');
  check(ready && ready.user_id === A.staff.id && ready.tenant_id === A.id &&
        ready.role === 'staff' && ready.client_id && ready.expires_at,
        'header auth: ready with client_id, user_id, tenant_id, role, expires_at');
  const sub = await subscribe(staff, 1, 'orders.' + A.id);
  check(sub && sub.op === 'subscribed' && sub.channel === 'orders.' + A.id &&
        Number.isInteger(sub.offset) && typeof sub.epoch === 'string' && sub.epoch !== '',
        'staff of A: subscribed to orders.A with offset and epoch');

  const owner = connect(null); // browser style: first frame
  await owner.opened;
  owner.send({ op: 'auth', id: 7, token: A.owner });
  const r2 = await next(owner, (m) => m.op === 'ready');
  check(r2 && r2.id === 7 && r2.role === 'owner', 'first-frame auth: ready, id echoed');
  const ksub = await subscribe(owner, 2, 'kitchen.' + A.id);
  check(ksub && ksub.op === 'subscribed', 'owner of A: subscribed to kitchen.A');

  const cust = connect(A.customer.token);
  await next(cust, (m) => m.op === 'ready');
  const e1 = await subscribe(cust, 3, 'orders.' + A.id);
  check(e1 && e1.op === 'error' && e1.code === 'PERMISSION_DENIED',
        'customer of A on orders.A: PERMISSION_DENIED');
  const own = await subscribe(cust, 4, 'private.user.' + A.customer.id);
  check(own && own.op === 'subscribed', 'customer: subscribed to their own private.user channel');
  const e2 = await subscribe(cust, 5, 'private.user.' + A.staff.id);
  check(e2 && e2.code === 'PERMISSION_DENIED', "customer on another user's private channel: PERMISSION_DENIED");

  const other = connect(B.owner);
  await next(other, (m) => m.op === 'ready');
  const e3 = await subscribe(other, 6, 'orders.' + A.id);
  check(e3 && e3.code === 'PERMISSION_DENIED', 'owner of B on orders.A: PERMISSION_DENIED');
  const e4 = await subscribe(other, 7, 'nonsense.' + A.id);
  check(e4 && e4.code === 'NOT_FOUND', 'unknown channel kind: NOT_FOUND');

  staff.send('{not json');
  const bad = await next(staff, (m) => m.op === 'error');
  check(bad && bad.code === 'INVALID_ARGUMENT', 'malformed JSON: INVALID_ARGUMENT');
  staff.send({ op: 'dance', id: 9 });
  const unk = await next(staff, (m) => m.id === 9);
  check(unk && unk.op === 'error' && unk.code === 'INVALID_ARGUMENT', 'unknown op: INVALID_ARGUMENT');

  const product = await http('POST', '/v1/products', { name: 'Soup', price_cents: 450, stock: 20 }, A.owner);
  const order = await http('POST', '/v1/orders',
    { items: [{ product_id: product.id, quantity: 2 }], notes: 'no onions' }, A.owner);
  const shown = await http('GET', '/v1/orders/' + order.id, undefined, A.owner);

  const pub = await next(staff, (m) => m.op === 'pub' && m.event.type === 'OrderCreated');
  check(pub && pub.channel === 'orders.' + A.id && pub.event.data.id === order.id,
        'the order created over HTTP arrives on orders.A (data.id = the order id)');
  check(JSON.stringify(pub.event.data) === JSON.stringify(shown),
        'its data is exactly GET /v1/orders/{id}');
  const made = await next(staff, (m) => m.op === 'pub' && m.event.type === 'ProductChanged');
  check(made && made.offset === sub.offset + 1 && made.epoch === sub.epoch &&
        made.event.data.id === product.id,
        'the product created before it came first (ProductChanged, subscribed offset + 1, same epoch)');
  check(pub.offset === made.offset + 1 && pub.epoch === sub.epoch,
        'the order follows with the next offset');
  check(pub.event.tenant_id === A.id && pub.event.id && pub.event.time,
        'event id, tenant_id and time');
  const ticket = await next(owner, (m) => m.op === 'pub');
  check(ticket && ticket.channel === 'kitchen.' + A.id && ticket.event.type === 'KitchenTicket' &&
        ticket.event.data.order_id === order.id, 'the kitchen ticket arrives on kitchen.A');

  await http('POST', `/v1/orders/${order.id}/status`, { status: 'confirmed' }, A.owner);
  const moved = await next(staff, (m) => m.op === 'pub' && m.event.type === 'OrderStatusChanged');
  check(moved && moved.event.data.status === 'confirmed' && moved.offset === pub.offset + 1,
        'a status change follows with the next offset');

  await recovery(A, staff, cust);
  await presence(A, staff, ready, cust, other);
  await refresh(A, B);
  await revocation(A);

  const unsub = (staff.send({ op: 'unsubscribe', id: 11, channel: 'orders.' + A.id }),
    await next(staff, (m) => m.id === 11));
  check(unsub && unsub.op === 'unsubscribed', 'unsubscribed');

  check(cust.queue.every((m) => m.op !== 'pub') && other.queue.every((m) => m.op !== 'pub'),
        'the refused subscribers never got a publication');
  check(cust.closed === null && other.closed === null && staff.closed === null,
        'connections stay open after refusals and errors');

  const rolls = await http('POST', '/v1/products', { name: 'Rolls', price_cents: 100, stock: 100000 }, A.owner);
  await privateChannels(A, rolls);
  await liveness(A);
  await replicas(A, rolls);

  staff.send('x'.repeat(70 * 1024));
  check(await closeCode(staff) === 1009, 'a 70 KiB message: closed 1009');
  await refusals;
  [owner, cust, other].forEach((c) => c.ws.close(1000));
  await Promise.all([owner, cust, other].map((c) => closeCode(c)));
  await addressCap();
  await slowClient();
  await metrics();
}

// The value of one sample of replica 1's /metrics (0 when absent).
async function metric(name) {
  const text = await (await fetch(process.env.METRICS)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

async function metrics() {
  check(await metric('realtime_deliveries_total{kind="orders"}') > 0 &&
        await metric('realtime_deliveries_total{kind="private"}') > 0 &&
        await metric('realtime_publications_total{kind="kitchen"}') > 0,
        'metrics: publications and deliveries by channel kind');
  check(await metric('realtime_deliver_latency_seconds_count') > 0, 'metrics: the publish -> deliver latency histogram');
  check(await metric('realtime_refused_per_address_total') >= 5, 'metrics: upgrades refused by the per-address cap');
  check(await metric('realtime_recheck_revoked_total') >= 2, 'metrics: live connections found revoked');
  check(await metric('realtime_slow_closes_total') >= 1, 'metrics: slow clients closed 4008');
  check(await metric('realtime_subscriptions{kind="orders"}') >= 0 &&
        (await fetch(process.env.METRICS).then((r) => r.text())).includes('realtime_connections '),
        'metrics: connections and subscriptions gauges');
}

const timer = setTimeout(() => { console.log('scenario timed out'); process.exit(1); }, 290000);
main().then(() => { clearTimeout(timer); console.log('scenario passed'); process.exit(0); },
  (e) => { console.log(e.stack || String(e)); process.exit(1); });
