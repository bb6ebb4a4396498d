// conns.js - a worker thread of bench.js holding a share of the benchmark's
// WebSocket connections (the `ws` package) and measuring what they receive.
//
// Connection i of the run belongs to tenant i % T (channel orders.<tenant>)
// and binds 127.0.0.<2 + i % 64>, as clients on many addresses would: two
// sides of N connections never run out of ephemeral ports on one source
// address, and 10 000 connections stay under realtime's per-address cap
// (REALTIME_MAX_CONNECTIONS_PER_IP, 256 by default). Commands from the main
// thread: connect, subscribe, reset, count, stats, close (each answered once done).
//
// Measuring a delivery: every copy of one publication is the same frame, so
// the event's `time` (when orders wrote the event) is parsed once per
// (channel, offset) and cached; each copy then costs a Map lookup and a
// histogram increment. Latency = receive time (wall clock) - event time,
// in 0.1 ms bins. Each connection also checks that offsets arrive one by
// one (a gap or a repeat is counted), and counts what it received.
'use strict';
const { parentPort, workerData } = require('worker_threads');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');

const { indices, tenants } = workerData;
const BIN_US = 100;
const BINS = 600001; // 0.1 ms bins up to 60 s (the last is "more")
const CONNECT_IN_FLIGHT = 100;

const conns = indices.map((i) => ({
  i,
  t: i % tenants.length,
  ws: null,
  ready: false,
  last: null, // last offset seen (null: none yet)
  got: 0,
}));
let hist = new Uint32Array(BINS);
let evTime = new Map(); // tenant * 2^32 + offset -> event time, ms
let stats = fresh();

function fresh() {
  return { deliveries: 0, gaps: 0, first: 0, last: 0, closed: 0, elu0: performance.eventLoopUtilization() };
}

function now() {
  return performance.timeOrigin + performance.now();
}

// The prefix of a pub frame on connection c's channel; the offset follows.
const prefixes = tenants.map((t) => Buffer.from(`{"op":"pub","channel":"orders.${t.id}","offset":`));

function onPub(c, data) {
  const pre = prefixes[c.t];
  let off = 0;
  for (let k = pre.length; k < data.length && data[k] >= 0x30 && data[k] <= 0x39; k++) off = off * 10 + data[k] - 0x30;
  const key = c.t * 4294967296 + off;
  let when = evTime.get(key);
  if (when === undefined) {
    when = Date.parse(JSON.parse(data.toString()).event.time);
    evTime.set(key, when);
  }
  const t = now();
  const b = Math.min(BINS - 1, Math.max(0, Math.floor(((t - when) * 1000) / BIN_US)));
  hist[b]++;
  if (c.last !== null && off !== c.last + 1) stats.gaps++;
  c.last = off;
  c.got++;
  stats.deliveries++;
  if (stats.first === 0) stats.first = t;
  stats.last = t;
}

function onMessage(c, data, waiters) {
  if (data.length > 10 && data[7] === 0x70 && data[8] === 0x75 && data[9] === 0x62) return onPub(c, data);
  const m = JSON.parse(data.toString());
  if (m.op === 'ready') c.ready = true;
  if (m.op === 'subscribed' && typeof m.offset === 'number') c.last = m.offset;
  const w = waiters.get(c);
  if (w !== undefined && w.op === m.op) {
    waiters.delete(c);
    w.resolve();
  } else if (m.op === 'error') {
    console.error(`connection ${c.i}: ${data.toString()}`);
  }
}

const waiters = new Map(); // conn -> {op, resolve}

function waitOp(c, op) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection ${c.i}: no ${op} in 60 s`)), 60000);
    waiters.set(c, { op, resolve: () => (clearTimeout(timer), resolve()) });
  });
}

function open(c, url) {
  const tenant = tenants[c.t];
  // Connection i is the (i / T)th of its tenant: with several tokens per
  // tenant (BENCH_TOKENS), they take them in turn.
  const token = tenant.tokens[Math.floor(c.i / tenants.length) % tenant.tokens.length];
  const ws = new WebSocket(url, {
    headers: { Authorization: 'Bearer ' + token },
    localAddress: `127.0.0.${2 + (c.i % 64)}`,
    perMessageDeflate: false,
  });
  c.ws = ws;
  c.ready = false;
  c.last = null;
  c.got = 0;
  const ready = waitOp(c, 'ready');
  ws.on('message', (data) => onMessage(c, data, waiters));
  ws.on('error', (e) => console.error(`connection ${c.i}: ${e.message}`));
  ws.on('close', (code) => {
    if (c.ws === ws && !closing) {
      stats.closed++;
      console.error(`connection ${c.i} closed by the server: ${code}`);
    }
  });
  return ready;
}

let closing = false;

// Runs fn over items with at most k in flight.
async function pool(items, k, fn) {
  let next = 0;
  const run = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(k, items.length) }, run));
}

const commands = {
  async connect({ url }) {
    closing = false;
    await pool(conns, CONNECT_IN_FLIGHT, (c) => open(c, url));
  },
  async subscribe() {
    await pool(conns, CONNECT_IN_FLIGHT, (c) => {
      const p = waitOp(c, 'subscribed');
      c.ws.send(JSON.stringify({ op: 'subscribe', id: 1, channel: 'orders.' + tenants[c.t].id }));
      return p;
    });
  },
  async reset() {
    hist = new Uint32Array(BINS);
    evTime = new Map();
    stats = fresh();
    for (const c of conns) c.got = 0;
  },
  async count() {
    return stats.deliveries;
  },
  async stats() {
    const got = conns.map((c) => [c.t, c.got]); // [tenant, received]
    const elu = performance.eventLoopUtilization(stats.elu0).utilization;
    const { deliveries, gaps, first, last, closed } = stats;
    return { hist, deliveries, gaps, first, last, closed, got, elu };
  },
  async close() {
    closing = true;
    await Promise.all(
      conns.map(
        (c) =>
          new Promise((resolve) => {
            if (c.ws === null || c.ws.readyState === WebSocket.CLOSED) return resolve();
            c.ws.on('close', resolve);
            c.ws.terminate();
          }),
      ),
    );
    for (const c of conns) c.ws = null;
  },
};

parentPort.on('message', async ({ cmd, arg }) => {
  try {
    const result = await commands[cmd](arg || {});
    parentPort.postMessage({ ok: true, result });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: e.message });
  }
});
