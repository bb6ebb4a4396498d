// bench.js - the load driver of tools/bench/realtime (run by run.sh).
//
// For each side - realtime ("ours") and the `ws` reference ("ref"), in
// alternating order over ROUNDS rounds - with the same connections, the same
// orders and the same measurements:
//   1. memory: the server's RSS (/proc/<pid>/status) before, after N
//      connections are open and authenticated ("ready"), and after each has
//      subscribed to its tenant's orders.<tenant> and 2 s have passed idle;
//      (after - before) / N = resident bytes per idle connection;
//   2. steady: RATE orders/s for SECS seconds through the gateway's HTTP API
//      (POST /v1/orders, spread over the tenants); publish->deliver latency
//      = receive time - the event's `time` (orders writes it with the
//      outbox row), p50/p99/max over every delivery;
//   3. burst: BURST orders as fast as CONC concurrent POSTs go. BURST_MODE
//      held (default): made while realtime is stopped, then released, so
//      both sides fan out the same backlog (heldInput); deliveries/s =
//      deliveries / (last receive - release). live: made during the
//      fan-out; deliveries / (last - first receive), with the order rate
//      beside it so that a side limited by order creation shows as such;
//   4. checks: every connection got every publication of its channel once
//      and in order (offsets one by one), none was closed by the server.
// The connections live on WORKERS worker threads (conns.js); their event
// loop utilisation and the process's CPU are reported so the client can be
// seen not to be the limit.
//
// Environment: GW, WS_OURS, WS_REF, RT_METRICS (URLs), RT_PID, REF_PID,
// TENANTS (the rt_system output), N, RATE, SECS, BURST, CONC, WORKERS,
// ROUNDS, BURST_MODE (held, live), and
// ONLY (a side's name: measure that side alone, for experiments).
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const { Worker } = require('worker_threads');

const env = (k, d) => (process.env[k] !== undefined ? process.env[k] : d);
const N = Number(env('N', 10000));
const RATE = Number(env('RATE', 20));
const SECS = Number(env('SECS', 20));
const BURST = Number(env('BURST', 300));
const CONC = Number(env('CONC', 8));
const WORKERS = Number(env('WORKERS', 2));
const ROUNDS = Number(env('ROUNDS', 1));
const CLK_TCK = 100;
const IDLE_SECS = 5;
const BURST_MODE = env('BURST_MODE', 'held'); // or 'live' (README)
const HOLD_SETTLE_MS = 1000;
const RT_PID = Number(env('RT_PID'));

const sysOut = fs.readFileSync(env('TENANTS'), 'utf8').split('\n');
const tenants = sysOut
  .filter((l) => l.startsWith('TENANT='))
  .map((l) => {
    const [id, token, products] = l.slice(7).split(' ');
    return { id, token, products: products.split(','), tokens: [token] };
  });
// BENCH_TOKENS > 1: more access tokens of each owner (distinct jti), which
// the connections of that tenant take in turn (conns.js).
for (const l of sysOut.filter((x) => x.startsWith('TOKEN='))) {
  const [t, token] = l.slice(6).split(' ');
  tenants[Number(t)].tokens.push(token);
}
const T = tenants.length;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
function cpuSecs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' '); // fields 3..
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime, stime
}

// Nanoseconds the process's threads spent runnable but not running (waiting
// for a CPU): on a shared machine, latency with a low CPU share is this.
function runqWaitSecs(pid) {
  let ns = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[1]);
    } catch (e) {
      // the thread ended meanwhile
    }
  }
  return ns / 1e9;
}
// CPU seconds (utime + stime) of each of the process's threads, summed by
// thread name (/proc/<pid>/task/<tid>/comm: realtime names its own, e.g.
// rt-ws, rt-recheck, rt-feed-orders; libs/rpc's are rpc-worker, nng's
// nng:*), so a phase can say where the server's CPU went.
function threadCpu(pid) {
  const by = new Map();
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      const name = fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
      by.set(name, (by.get(name) || 0) + (Number(rest[11]) + Number(rest[12])) / CLK_TCK);
    } catch (e) {
      // the thread ended meanwhile
    }
  }
  return by;
}

// "rt-ws 38.5%, rt-recheck 6.1%, ..." (% of one core over wall seconds),
// busiest first, threads under 0.5 % left out.
function threadShares(before, after, wall) {
  const out = [];
  for (const [name, secs] of after) {
    const pct = (100 * (secs - (before.get(name) || 0))) / wall;
    if (pct >= 0.5) out.push([name, pct]);
  }
  out.sort((a, b) => b[1] - a[1]);
  return out;
}
const sharesText = (sh) => sh.map(([n, p]) => `${n} ${p.toFixed(1)}%`).join(', ');

// Realtime's bus counters (its /metrics, summed over sources): gaps seen
// and events fetched through Replay, to show a held burst's losses healed.
function busCounts() {
  return new Promise((resolve) => {
    http
      .get(env('RT_METRICS'), (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          const sum = (name) =>
            text
              .split('\n')
              .filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' '))
              .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
          resolve({ gaps: sum('bus_gaps_total'), backfilled: sum('bus_backfilled_total') });
        });
      })
      .on('error', () => resolve({ gaps: NaN, backfilled: NaN }));
  });
}

const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0];

// ------------------------------------------------------------- workers ---
const workers = [];
for (let w = 0; w < WORKERS; w++) {
  const indices = [];
  for (let i = w; i < N; i += WORKERS) indices.push(i);
  const worker = new Worker(path.join(__dirname, 'conns.js'), { workerData: { indices, tenants } });
  worker.queue = [];
  worker.on('message', (m) => worker.queue.shift()(m));
  worker.on('error', (e) => {
    console.error('worker:', e);
    process.exit(1);
  });
  workers.push(worker);
}

function ask(worker, cmd, arg) {
  return new Promise((resolve, reject) => {
    worker.queue.push((m) => (m.ok ? resolve(m.result) : reject(new Error(m.error))));
    worker.postMessage({ cmd, arg });
  });
}
const all = (cmd, arg) => Promise.all(workers.map((w) => ask(w, cmd, arg)));

// -------------------------------------------------------------- orders ---
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const gw = new URL(env('GW'));
let failuresShown = 0;

function postOrder(t) {
  const tenant = tenants[t];
  const a = Math.floor(Math.random() * tenant.products.length);
  const b = (a + 1 + Math.floor(Math.random() * (tenant.products.length - 1))) % tenant.products.length;
  const body = JSON.stringify({
    items: [
      { product_id: tenant.products[a], quantity: 1 },
      { product_id: tenant.products[b], quantity: 1 },
    ],
  });
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        host: gw.hostname,
        port: gw.port,
        path: '/v1/orders',
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + tenant.token, 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          if (res.statusCode !== 201 && failuresShown++ < 5) console.error(`POST /v1/orders: ${res.statusCode} ${text}`);
          resolve(res.statusCode);
        });
      },
    );
    req.on('error', (e) => {
      if (failuresShown++ < 5) console.error(`POST /v1/orders: ${e.message}`);
      resolve(0);
    });
    req.end(body);
  });
}

// Orders at `rate`/s for `secs` (steady) or `count` with `conc` in flight
// (burst); returns the orders made per tenant, failures, and the seconds.
async function makeOrders({ rate, secs, count, conc }) {
  const made = new Array(T).fill(0);
  let failed = 0;
  let k = 0;
  const one = async () => {
    const t = k++ % T;
    const status = await postOrder(t);
    if (status === 201) made[t]++;
    else failed++;
  };
  const t0 = Date.now();
  if (rate) {
    const total = Math.round(rate * secs);
    const pending = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      pending.push(one());
    }
    await Promise.all(pending);
  } else {
    let left = count;
    const loop = async () => {
      while (left-- > 0) await one();
    };
    await Promise.all(Array.from({ length: conc }, loop));
  }
  return { made, failed, secs: (Date.now() - t0) / 1000 };
}

// ------------------------------------------------------------ measuring ---
async function waitDeliveries(expected) {
  let last = -1;
  let still = Date.now();
  for (;;) {
    const n = (await all('count')).reduce((a, b) => a + b, 0);
    if (n >= expected) return;
    if (n !== last) (last = n), (still = Date.now());
    if (Date.now() - still > 10000) return; // nothing more for 10 s
    await sleep(200);
  }
}

function percentile(hist, total, p) {
  let need = Math.ceil(total * p);
  for (let b = 0; b < hist.length; b++) if ((need -= hist[b]) <= 0) return b / 10; // ms
  return NaN;
}

// The held burst's input (BURST_MODE=held): realtime is stopped
// (SIGSTOP: all its threads, its bus subscriber too) while the burst's
// orders are created, so that creation (gateway, orders, PostgreSQL) has
// the machine and is done before any fan-out starts; the orders' events
// wait in realtime's socket buffers, and what the bus drops meanwhile
// (nng pub drops once they are full) is healed by realtime's gap
// detection and orders' Replay after SIGCONT. Both sides get the same
// input this way: the reference is fed by its upstream connections to
// realtime, so holding realtime holds the reference's input too. After
// SIGCONT one more order (the sentinel, part of the burst) is created at
// once: its event reveals a gap at the tail, which nothing would reveal
// for IDLE_CHECK_MS (5 s) otherwise. Returns the orders made and the
// release time (ms). atRelease() runs just before SIGCONT (the phase's
// measurements start there).
async function heldInput(load, atRelease) {
  process.kill(RT_PID, 'SIGSTOP');
  let o;
  try {
    o = await makeOrders(load);
    await sleep(HOLD_SETTLE_MS); // orders' relay publishes the last ones
    atRelease();
  } finally {
    process.kill(RT_PID, 'SIGCONT');
  }
  const release = Date.now();
  const t = o.made.length - 1;
  if ((await postOrder(t)) === 201) o.made[t]++;
  else o.failed++;
  return { o, release };
}

async function phase(side, kind, load) {
  await all('reset');
  const bus0 = await busCounts();
  let c0, q0, th0, k0, w0;
  const start = () => {
    c0 = cpuSecs(side.pid);
    q0 = runqWaitSecs(side.pid);
    th0 = threadCpu(side.pid);
    k0 = process.cpuUsage();
    w0 = Date.now();
  };
  const held = load.count && BURST_MODE === 'held' ? await heldInput(load, start) : null;
  if (!held) start();
  const o = held ? held.o : await makeOrders(load);
  const expected = o.made.reduce((a, b) => a + b, 0) * (N / T);
  await waitDeliveries(expected);
  const wall = (Date.now() - w0) / 1000;
  const cpu = cpuSecs(side.pid) - c0;
  const runq = runqWaitSecs(side.pid) - q0;
  const threads = threadShares(th0, threadCpu(side.pid), wall);
  const k = process.cpuUsage(k0);
  const bus1 = await busCounts();
  const st = await all('stats');
  const hist = new Uint32Array(st[0].hist.length);
  let deliveries = 0;
  let gaps = 0;
  let closed = 0;
  let first = Infinity;
  let last = 0;
  let missing = 0;
  let extra = 0;
  for (const s of st) {
    for (let b = 0; b < hist.length; b++) hist[b] += s.hist[b];
    deliveries += s.deliveries;
    gaps += s.gaps;
    closed += s.closed;
    if (s.first) first = Math.min(first, s.first);
    last = Math.max(last, s.last);
    for (const [t, got] of s.got) {
      missing += Math.max(0, o.made[t] - got);
      extra += Math.max(0, got - o.made[t]);
    }
  }
  const r = {
    orders: o.made.reduce((a, b) => a + b, 0),
    failed: o.failed,
    ordersPerSec: o.made.reduce((a, b) => a + b, 0) / o.secs,
    deliveries,
    expected,
    missing,
    extra,
    gaps,
    closed,
    p50: percentile(hist, deliveries, 0.5),
    p99: percentile(hist, deliveries, 0.99),
    max: percentile(hist, deliveries, 1),
    // Held: from the release, so the fan-out's start-up counts too.
    perSec: deliveries / Math.max(0.001, (last - (held ? held.release : first)) / 1000),
    fromRelease: held ? { first: first - held.release, last: last - held.release } : null,
    serverCpu: (100 * cpu) / wall,
    serverWait: (100 * runq) / wall,
    load: loadavg(),
    clientCpu: (100 * (k.user + k.system)) / 1e6 / wall,
    elu: Math.max(...st.map((s) => s.elu)),
    threads,
    busGaps: bus1.gaps - bus0.gaps,
    busBackfilled: bus1.backfilled - bus0.backfilled,
  };
  console.log(
    `  ${kind}: ${r.orders} orders (${r.ordersPerSec.toFixed(1)}/s, ${r.failed} failed), ` +
      `${r.deliveries}/${r.expected} delivered, missing ${r.missing}, extra ${r.extra}, ` +
      `out of order ${r.gaps}, closed ${r.closed}; latency p50 ${r.p50} ms p99 ${r.p99} ms max ${r.max} ms; ` +
      `${Math.round(r.perSec)} deliveries/s; server CPU ${r.serverCpu.toFixed(0)}%, ` +
      `server threads waiting for a CPU ${r.serverWait.toFixed(0)}%, load ${r.load}, ` +
      `client CPU ${r.clientCpu.toFixed(0)}%, busiest client thread ${(100 * r.elu).toFixed(0)}% busy`,
  );
  if (held)
    console.log(
      `    held input: ${r.orders} orders made with realtime stopped (the last one after the release); ` +
        `first delivery ${r.fromRelease.first.toFixed(0)} ms, last ${r.fromRelease.last.toFixed(0)} ms after the release ` +
        `(latencies above include the hold); realtime's bus: ${r.busGaps} gaps, ${r.busBackfilled} events fetched by Replay`,
    );
  console.log(`    server CPU by thread (% of a core): ${sharesText(threads)}`);
  return r;
}

// Memory is measured on a side's first connections only: afterwards the
// allocators keep the pages the closed connections freed.
async function runSide(side) {
  const fresh = !side.measured;
  side.measured = true;
  const distinct = tenants.reduce((a, t) => a + Math.min(t.tokens.length, Math.ceil(N / T)), 0);
  console.log(`== ${side.name} (${side.url}, pid ${side.pid}), ${N} connections over ${T} tenants, ${distinct} distinct tokens`);
  await sleep(1000);
  const rss0 = rssKB(side.pid);
  let t = Date.now();
  await all('connect', { url: side.url });
  const connectSecs = (Date.now() - t) / 1000;
  await sleep(2000);
  const rss1 = rssKB(side.pid);
  await all('subscribe');
  await sleep(2000);
  const rss2 = rssKB(side.pid);
  // Idle: connected and subscribed, no publication; what runs anyway.
  const idle0 = threadCpu(side.pid);
  await sleep(IDLE_SECS * 1000);
  const idle = threadShares(idle0, threadCpu(side.pid), IDLE_SECS);
  const r = {
    fresh,
    rss0,
    rss1,
    rss2,
    connectedKB: (rss1 - rss0) / N,
    idleKB: (rss2 - rss0) / N,
    connectSecs,
  };
  console.log(
    `  memory: RSS ${rss0} kB before, ${rss1} kB connected, ${rss2} kB subscribed -> ` +
      `${(r.connectedKB * 1024).toFixed(0)} B per connection, ${(r.idleKB * 1024).toFixed(0)} B per subscribed idle connection ` +
      `(connected in ${connectSecs.toFixed(1)} s)`,
  );
  console.log(`  idle ${IDLE_SECS} s, server CPU by thread (% of a core): ${sharesText(idle) || 'none'}`);
  r.idle = idle;
  r.steady = await phase(side, 'steady', { rate: RATE, secs: SECS });
  r.burst = await phase(side, 'burst', { count: BURST, conc: CONC });
  await all('close');
  await sleep(2000);
  return r;
}

function table(results) {
  const row = (name, f) => `| ${name} | ${results.map((r) => f(r)).join(' | ')} |`;
  const lines = [
    `| ${N} connections, ${T} tenants | ${results.map((r) => r.name).join(' | ')} |`,
    `|---|${results.map(() => '---:').join('|')}|`,
    row('RSS before / connected / subscribed (kB)', (r) => `${r.rss0} / ${r.rss1} / ${r.rss2}`),
    row('resident per idle connection (subscribed)', (r) => (r.fresh ? `${(r.idleKB * 1024).toFixed(0)} B` : 'n/a (2nd time)')),
    row('resident per connection (authenticated, no subscription)', (r) => (r.fresh ? `${(r.connectedKB * 1024).toFixed(0)} B` : 'n/a (2nd time)')),
    row(`steady ${RATE} orders/s: latency p50 / p99 / max (ms)`, (r) => `${r.steady.p50} / ${r.steady.p99} / ${r.steady.max}`),
    row('steady: deliveries/s', (r) => Math.round(r.steady.perSec)),
    row('steady: server CPU / waiting for a CPU (% of wall time)', (r) => `${r.steady.serverCpu.toFixed(0)} / ${r.steady.serverWait.toFixed(0)}`),
    row(`burst ${BURST} orders${BURST_MODE === 'held' ? ' + 1, held' : ', live'}: orders/s made`, (r) => r.burst.ordersPerSec.toFixed(0)),
    row(`burst: deliveries/s${BURST_MODE === 'held' ? ' (from the release of the held input)' : ''}`, (r) => Math.round(r.burst.perSec)),
    ...(BURST_MODE === 'held'
      ? [
          row('burst: first / last delivery after the release (ms)', (r) => `${r.burst.fromRelease.first.toFixed(0)} / ${r.burst.fromRelease.last.toFixed(0)}`),
          row("burst: realtime's bus gaps / events fetched by Replay", (r) => `${r.burst.busGaps} / ${r.burst.busBackfilled}`),
        ]
      : []),
    row('burst: latency p50 / p99 (ms)', (r) => `${r.burst.p50} / ${r.burst.p99}`),
    row('burst: server CPU / waiting for a CPU (% of wall time)', (r) => `${r.burst.serverCpu.toFixed(0)} / ${r.burst.serverWait.toFixed(0)}`),
    row('idle 5 s: server CPU by thread (% of a core)', (r) => sharesText(r.idle.slice(0, 4))),
    row('steady: server CPU by thread', (r) => sharesText(r.steady.threads.slice(0, 4))),
    row('burst: server CPU by thread', (r) => sharesText(r.burst.threads.slice(0, 4))),
    row('load average after steady / burst', (r) => `${r.steady.load} / ${r.burst.load}`),
    row('client CPU steady / burst (% of a core); busiest thread', (r) => `${r.steady.clientCpu.toFixed(0)} / ${r.burst.clientCpu.toFixed(0)}; ${(100 * Math.max(r.steady.elu, r.burst.elu)).toFixed(0)}%`),
    row('missing / extra / out of order / closed', (r) => [r.steady, r.burst].map((p) => `${p.missing}/${p.extra}/${p.gaps}/${p.closed}`).join(', ')),
  ];
  console.log(lines.join('\n'));
}

async function main() {
  const sides = [
    { name: 'realtime', url: env('WS_OURS'), pid: Number(env('RT_PID')) },
    { name: 'ws reference', url: env('WS_REF'), pid: Number(env('REF_PID')) },
  ];
  const results = [];
  let bad = false;
  if (env('ONLY', '') !== '') sides.splice(0, sides.length, ...sides.filter((s) => s.name === env('ONLY')));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const r = await runSide(side);
      r.name = `${side.name} (round ${round + 1})`;
      results.push(r);
      for (const p of [r.steady, r.burst]) bad = bad || p.missing + p.extra + p.gaps + p.closed + p.failed > 0;
    }
  }
  console.log('== side by side');
  table(results);
  if (bad) console.log('WARNING: some deliveries were missing, repeated, out of order, or orders failed (see above)');
  await Promise.all(workers.map((w) => w.terminate()));
  agent.destroy();
  process.exitCode = bad ? 2 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
