// inbox.js - the realtime side of tests/notifications/inbox_itest.c: a
// real WebSocket client (the `ws` package, installed by npm in
// tests/realtime/client and found through WS_MODULE) against the realtime
// service, subscribed to a customer's private.user.<id> channel, while the
// owner moves the customer's order along over the gateway's HTTP API.
// Each status change must arrive as a "Notification" publication whose
// data is the notification GET /v1/notifications shows.
// Environment: GW, WS, WS_MODULE, CUSTOMER_TOKEN, CUSTOMER_ID, OWNER_TOKEN,
// ORDER_ID (a confirmed order of the customer's), OTHER_TOKEN (another
// customer of the tenant). Exits 0 when every check held, 1 otherwise;
// every wait is bounded.
'use strict';
const WebSocket = require(process.env.WS_MODULE);

const { GW, WS, CUSTOMER_TOKEN, CUSTOMER_ID, OWNER_TOKEN, ORDER_ID, OTHER_TOKEN } =
  process.env;
const WAIT_MS = 30000;
const CHANNEL = 'private.user.' + CUSTOMER_ID;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

async function http(method, path, body, token) {
  const headers = { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token };
  const r = await fetch(GW + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

function connect(token) {
  const ws = new WebSocket(WS, { headers: { Authorization: 'Bearer ' + token } });
  const c = { ws, queue: [], waiters: [] };
  ws.on('error', () => {});
  ws.on('message', (data) => {
    c.queue.push(JSON.parse(data.toString()));
    c.waiters.splice(0).forEach((w) => w());
  });
  c.opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('close', () => reject(new Error('closed before open')));
  });
  return c;
}

async function next(c, pred, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const i = c.queue.findIndex(pred);
    if (i >= 0) return c.queue.splice(i, 1)[0];
    const left = end - Date.now();
    if (left <= 0) return null;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, left);
      c.waiters.push(() => { clearTimeout(t); resolve(); });
    });
  }
}

async function subscribe(c, id, channel) {
  await c.opened;
  if (await next(c, (m) => m.op === 'ready') === null) throw new Error('no ready');
  c.ws.send(JSON.stringify({ op: 'subscribe', id, channel }));
  return next(c, (m) => m.id === id);
}

const isNotification = (status) => (m) =>
  m.op === 'pub' && m.channel === CHANNEL && m.event && m.event.type === 'Notification' &&
  m.event.data && m.event.data.data && m.event.data.data.status === status;

async function main() {
  const mine = connect(CUSTOMER_TOKEN);
  const ack = await subscribe(mine, 1, CHANNEL);
  check(ack && !ack.error, 'the customer subscribes to their private channel');
  const theirs = connect(OTHER_TOKEN);
  const denied = await subscribe(theirs, 2, CHANNEL);
  check(denied && denied.code === 'PERMISSION_DENIED',
    "another customer on that channel: PERMISSION_DENIED");
  theirs.ws.close();

  for (const status of ['preparing', 'ready']) {
    await http('POST', `/v1/orders/${ORDER_ID}/status`, { status }, OWNER_TOKEN);
    const pub = await next(mine, isNotification(status));
    check(pub !== null, `order ${status}: a Notification on ${CHANNEL}`);
    const n = pub.event.data;
    check(n.type === 'order.status_changed' && n.data.order_id === ORDER_ID &&
      n.read_at === '' && typeof n.title === 'string' && n.title.length > 0,
      `order ${status}: the notification says what happened`);
    const inbox = await http('GET', '/v1/notifications?limit=100', undefined, CUSTOMER_TOKEN);
    const same = inbox.notifications.find((x) => x.id === n.id);
    check(same && same.title === n.title && same.body === n.body &&
      same.created_at === n.created_at && same.data.status === status,
      `order ${status}: the same notification is in the inbox`);
  }
  mine.ws.close();
}

main().then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });
