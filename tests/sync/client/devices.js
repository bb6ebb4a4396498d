// devices.js - the WebSocket side of tests/sync/devices_itest.c: a real
// client (the `ws` package) against realtime, fed by sync's bus
// (SYNC_EVENTS). Two tenants made over the gateway; A's owner (staff and
// above) and B's owner subscribe; a device of A beats once over HTTP ->
// DeviceOnline on devices.<A> with the device as GET /v1/sync/devices/{id}
// shows it; B is refused devices.<A> and gets nothing of A's device on its
// own devices.<B>.
// Environment: GW (http://127.0.0.1:<port>), WS (ws://127.0.0.1:<port>/v1/realtime).
// Exits 0 when every check held, 1 (with the failed check) otherwise;
// every wait is bounded.
'use strict';
const WebSocket = require('ws');

const GW = process.env.GW;
const WS = process.env.WS;
const WAIT_MS = 20000; // generous: the flush runs every 100 ms
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

async function tenant(tag) {
  const slug = `dv-${tag}-${Date.now().toString(36)}`;
  const t = await http('POST', '/v1/tenants', {
    name: 'Devices ' + tag, slug,
    owner: { email: `owner-${tag}@example.com`, password: PASSWORD, name: 'Owner' },
  });
  return { id: t.tenant.id, slug, owner: t.access_token };
}

function connect(token) {
  const ws = new WebSocket(WS, { headers: { Authorization: 'Bearer ' + token } });
  const c = { ws, queue: [], waiters: [], closed: null };
  ws.on('close', (code) => { c.closed = code; c.waiters.splice(0).forEach((w) => w()); });
  ws.on('error', () => {});
  ws.on('message', (data) => {
    c.queue.push(JSON.parse(data.toString()));
    c.waiters.splice(0).forEach((w) => w());
  });
  c.send = (v) => ws.send(JSON.stringify(v));
  return c;
}

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

async function ready(token) {
  const c = connect(token);
  if (await next(c, (m) => m.op === 'ready') === null) throw new Error('no ready');
  return c;
}

async function subscribe(c, id, channel) {
  c.send({ op: 'subscribe', id, channel });
  return next(c, (m) => m.id === id);
}

async function main() {
  const a = await tenant('a');
  const b = await tenant('b');
  const wa = await ready(a.owner);
  const wb = await ready(b.owner);
  const s = await subscribe(wa, 1, 'devices.' + a.id);
  check(s && s.op === 'subscribed', "A's owner subscribed to devices.<A>");
  const denied = await subscribe(wb, 2, 'devices.' + a.id);
  check(denied && denied.code === 'PERMISSION_DENIED', "B's owner refused devices.<A>");
  const sb = await subscribe(wb, 3, 'devices.' + b.id);
  check(sb && sb.op === 'subscribed', "B's owner subscribed to devices.<B>");

  const reg = await http('POST', '/v1/sync/devices', { name: 'Till', platform: 'linux' }, a.owner);
  const dev = reg.device;
  const ses = await http('POST', `/v1/sync/devices/${dev.id}/session`,
    { device_secret: reg.device_secret }, null, a.slug);
  await http('POST', '/v1/sync/heartbeat', { app_version: '1.2.3', pending: 0 }, ses.access_token);

  const on = await next(wa, (m) => m.op === 'pub' && m.event.type === 'DeviceOnline');
  check(on !== null, 'DeviceOnline arrived on devices.<A>');
  check(on.channel === 'devices.' + a.id && on.event.tenant_id === a.id, 'on the tenant\'s channel');
  const shown = await http('GET', `/v1/sync/devices/${dev.id}`, undefined, a.owner);
  check(on.event.data.id === dev.id && on.event.data.status === 'online' &&
        on.event.data.app_version === '1.2.3' && on.event.data.name === shown.name,
        'its data is the device as the API shows it, online');
  // B hears nothing: a beat of B's own device after A's makes a marker
  // on devices.<B>; nothing of A's device may come before it.
  const regb = await http('POST', '/v1/sync/devices', { name: 'B till' }, b.owner);
  const sesb = await http('POST', `/v1/sync/devices/${regb.device.id}/session`,
    { device_secret: regb.device_secret }, null, b.slug);
  await http('POST', '/v1/sync/heartbeat', {}, sesb.access_token);
  const mark = await next(wb, (m) => m.op === 'pub');
  check(mark !== null && mark.event.data.id === regb.device.id, "B's own device online on devices.<B>");
  check(wb.queue.every((m) => !(m.op === 'pub' && m.event.data && m.event.data.id === dev.id)),
        "nothing of A's device reached B");
  wa.ws.close();
  wb.ws.close();
}

main().then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });
