// bench.js - the notifications benchmark driver (run.sh starts it).
// Starts the receiver (receiver.js) and the system (ntf_system, FIXTURE),
// then for each concurrency in CONCS runs, side by side:
//
//   burst  N jobs made as fast as the producer goes, drained by CONC
//          senders: ours = N orders placed while notifications is stopped,
//          then notifications started (Replay catch-up fans out the
//          deliveries while its NOTIFICATIONS_WORKERS=CONC threads send);
//          BullMQ = the same N bodies added with addBulk (chunks of BULK=100;
//          BULK=1: one add per job, as a producer per event would)
//          while a Worker with concurrency CONC sends.
//   drain  the senders alone: like burst with DN jobs, but the receiver
//          holds its answers until all DN jobs are enqueued (every sender blocked,
//          the backlog complete), then answers; jobs/s = arrivals after
//          the release / (last arrival - release); the latency columns
//          then say by when (ms after the release) 50 %, 99 %, all arrived.
//   steady SN jobs at RATE/s: ours = orders placed through the gateway at
//          RATE/s while notifications runs; BullMQ = the same bodies added
//          one by one on the schedule our rows were really created on
//          (the same offsets from the first, which may fall behind RATE
//          when the machine is loaded).
//
// Enqueue time: ours the delivery row's created_at (PostgreSQL), BullMQ
// the wall clock just before the add. Delivery: the receiver's arrival
// time of the request with that webhook-id. jobs/s = N / (last arrival -
// first enqueue). Prints a table; exit 2 if a side lost, repeated or
// mis-signed a delivery.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const readline = require('node:readline');
const http = require('node:http');
const path = require('node:path');
const { Queue } = require('bullmq');
const { performance } = require('node:perf_hooks');

const env = process.env;
const N = Number(env.N || 2000);
const SN = Number(env.SN || 1000);
// drain: the receiver holds answers while the backlog builds; held past
// the senders' 10 s timeout they would fail, so the backlog stays small.
const DN = Number(env.DN || 1000);
const RATE = Number(env.RATE || 100);
const CONCS = String(env.CONCS || '4 16').split(/\s+/).filter(Boolean).map(Number);
const ONLY = env.ONLY || '';
const PHASES = String(env.PHASES || 'burst drain steady').split(/\s+/).filter(Boolean);
const BULK = Math.max(1, Number(env.BULK || 100)); // BullMQ's burst: jobs per addBulk
const TMP = env.TMP;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failed = false;

function lines(child) {
  const rl = readline.createInterface({ input: child.stdout });
  const queue = [];
  const waiters = [];
  rl.on('line', (l) => (waiters.length ? waiters.shift()(l) : queue.push(l)));
  rl.on('close', () => { while (waiters.length) waiters.shift()(null); });
  return () => (queue.length ? Promise.resolve(queue.shift())
    : new Promise((r) => waiters.push(r)));
}

function get(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let s = '';
      res.on('data', (c) => (s += c));
      res.on('end', () => resolve(s ? JSON.parse(s) : null));
    }).on('error', reject);
  });
}

// CPU seconds (user + system, all threads) of a process so far.
function cpuOf(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(v[11]) + Number(v[12])) / 100;
  } catch { return NaN; }
}
const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// enq: Map id -> enqueue ms; dump: the receiver's /__dump.
function summarise(enq, dump, release) {
  const lat = [];
  let first = Infinity;
  let last = -Infinity;
  let missing = 0;
  for (const [id, t] of enq) {
    first = Math.min(first, t);
    const a = dump.arrivals[id];
    if (a === undefined) { missing++; continue; }
    last = Math.max(last, a);
    lat.push(a - t);
  }
  lat.sort((x, y) => x - y);
  if (release !== undefined) {
    // p50/p99/max: ms after the release by which 50 %, 99 %, all of the
    // answers after it had arrived (stragglers show as max >> p99).
    const after = Object.values(dump.arrivals).filter((a) => a > release)
      .map((a) => a - release).sort((x, y) => x - y);
    return finish({
      n: enq.size, missing, repeats: dump.repeats, bad: dump.badSignatures,
      jobsPerSec: after.length / ((last - release) / 1000),
      p50: pct(after, 50), p99: pct(after, 99), max: after[after.length - 1],
      enqSpan: Math.max(...enq.values()) - first,
      rxCpu: dump.cpuMs / 1000, rxElu: dump.elu,
    });
  }
  return finish({
    n: enq.size, missing, repeats: dump.repeats, bad: dump.badSignatures,
    jobsPerSec: lat.length / ((last - first) / 1000),
    p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1],
    enqSpan: Math.max(...enq.values()) - first,
    rxCpu: dump.cpuMs / 1000, rxElu: dump.elu,
  });
}

function finish(r) {
  if (r.missing || r.repeats || r.bad) failed = true;
  return r;
}

async function main() {
  const rx = spawn('node', [path.join(__dirname, 'receiver.js')],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const rxLine = lines(rx);
  const rxPort = Number((await rxLine()).split(' ')[1]);
  const sys = spawn(env.FIXTURE, [], {
    stdio: ['pipe', 'pipe', fs.openSync(`${TMP}/sys.err`, 'w')],
    env: { ...env, RECEIVER_PORT: String(rxPort) },
  });
  const sysLine = lines(sys);
  const info = {};
  for (let l; (l = await sysLine()) !== 'READY';) {
    if (l === null) throw new Error(`the system did not start:\n${fs.readFileSync(`${TMP}/sys.err`, 'utf8')}`);
    const i = l.indexOf('=');
    info[l.slice(0, i)] = l.slice(i + 1);
  }
  const redis = { host: '127.0.0.1', port: Number(info.REDIS_PORT) };
  const psql = (sql) => execFileSync('psql', [info.PG_URL, '-Atqc', sql],
    { encoding: 'utf8', maxBuffer: 1 << 28 });
  const reset = () => get(rxPort, `/__reset?secret=${encodeURIComponent(info.SECRET)}`);
  const waitCount = async (n) => {
    const end = Date.now() + 900000;
    while ((await get(rxPort, '/__count')).count < n) {
      if (Date.now() > end) break;
      await sleep(20);
    }
  };
  const rows = [];
  const bodies = {};
  const cmd = async (line) => {
    sys.stdin.write(`${line}\n`);
    const a = await sysLine();
    if (a === null || !a.startsWith('DONE')) throw new Error(`${line}: ${a}\n${fs.readFileSync(`${TMP}/sys.err`, 'utf8')}`);
    return Number(a.split(' ')[1]);
  };

  async function ours(phase, conc, n) {
    await reset();
    const l0 = load();
    let pid;
    let release;
    if (phase === 'drain') {
      await get(rxPort, '/__hold');
      // Rows of this round only (the command empties the table first).
      const since = now() / 1000;
      const done = cmd(`BURST ${conc} ${n}`);
      const count = () => Number(psql('SELECT count(*) FROM notifications.deliveries ' +
        `WHERE created_at > to_timestamp(${since})`));
      while (count() < n) await sleep(20);
      release = now();
      await get(rxPort, '/__release');
      pid = await done;
    } else {
      pid = await cmd(phase === 'burst' ? `BURST ${conc} ${n}` : `STEADY ${conc} ${n} ${RATE}`);
    }
    await waitCount(n);
    // Both commands start a new process: its CPU counts from its start.
    const cpu = cpuOf(pid);
    info.NOTIF_PID = String(pid);
    const dump = await get(rxPort, '/__dump');
    const got = JSON.parse(psql(
      "SELECT json_agg(json_build_object('id', event_id, 't', " +
      "extract(epoch FROM created_at) * 1000, 'b', body)) " +
      "FROM notifications.deliveries WHERE status = 'succeeded'"));
    const enq = new Map(got.map((g) => [g.id, g.t]));
    // In enqueue order, with each job's offset from the first: BullMQ's
    // steady producer follows the same schedule as ours really went.
    got.sort((x, y) => x.t - y.t);
    bodies[phase] = got.map((g) => ({ id: g.id, body: g.b, at: g.t - got[0].t }));
    rows.push({ side: 'notifications', phase, conc, cpu, load: l0, ...summarise(enq, dump, release) });
  }

  async function bull(phase, conc, n) {
    const name = `bench-${phase}-${conc}`;
    const jobs = bodies[phase] ? bodies[phase].slice(0, n) : null;
    if (!jobs || jobs.length < n) throw new Error(`no bodies for ${phase}: run the notifications side first`);
    const w = spawn('node', [path.join(__dirname, 'bull_worker.js')], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...env, QUEUE: name, CONC: String(conc), REDIS_PORT: String(redis.port),
        SECRET: info.SECRET, URL: `http://127.0.0.1:${rxPort}/hook` },
    });
    const wl = lines(w);
    if ((await wl()) !== 'READY') throw new Error('BullMQ worker did not start');
    const q = new Queue(name, { connection: redis });
    await q.waitUntilReady();
    await reset();
    const l0 = load();
    const c0 = cpuOf(w.pid);
    // removeOnComplete: BullMQ's advice for production (auto-removal), and
    // what our side does (XACK + XDEL; the row stays in PostgreSQL).
    const opts = { attempts: 3, backoff: { type: 'exponential', delay: 5000 },
      removeOnComplete: true };
    const enq = new Map();
    let release;
    if (phase === 'drain') await get(rxPort, '/__hold');
    if (phase !== 'steady') {
      for (let i = 0; i < n; i += BULK) {
        const chunk = jobs.slice(i, i + BULK);
        const t = now();
        for (const j of chunk) enq.set(j.id, t);
        if (BULK === 1) await q.add('webhook', { id: chunk[0].id, body: chunk[0].body }, opts);
        else await q.addBulk(chunk.map((j) => ({ name: 'webhook', data: { id: j.id, body: j.body }, opts })));
      }
    } else {
      const t0 = now();
      for (let i = 0; i < n; i++) {
        const due = t0 + jobs[i].at;
        const wait = due - now();
        if (wait > 0) await sleep(wait);
        enq.set(jobs[i].id, now());
        await q.add('webhook', { id: jobs[i].id, body: jobs[i].body }, opts);
      }
    }
    if (phase === 'drain') {
      release = now();
      await get(rxPort, '/__release');
    }
    await waitCount(n);
    const cpu = cpuOf(w.pid) - c0;
    const dump = await get(rxPort, '/__dump');
    rows.push({ side: 'BullMQ', phase, conc, cpu, load: l0, ...summarise(enq, dump, release) });
    await q.close();
    w.stdin.end();
    await new Promise((r) => w.on('exit', r));
  }

  for (const conc of CONCS) {
    for (const phase of PHASES) {
      const n = { burst: N, drain: DN, steady: SN }[phase];
      if (ONLY !== 'BullMQ' || !bodies[phase]) await ours(phase, conc, n);
      if (ONLY !== 'notifications') await bull(phase, conc, n);
      print(rows.slice(-2));
    }
  }
  console.log('\n== summary');
  print(rows);
  sys.stdin.end();
  rx.stdin.end();
  await new Promise((r) => sys.on('exit', r));
  process.exit(failed ? 2 : 0);
}

function print(rs) {
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log('side           phase   conc     n   jobs/s  p50 ms  p99 ms  max ms  enq span ms  cpu s  rx cpu s  rx elu  lost rep bad  load');
  for (const r of rs) {
    console.log(`${r.side.padEnd(14)} ${r.phase.padEnd(7)} ${String(r.conc).padStart(4)} ${String(r.n).padStart(5)} ` +
      `${f(r.jobsPerSec).padStart(8)} ${f(r.p50).padStart(7)} ${f(r.p99).padStart(7)} ${f(r.max).padStart(7)} ` +
      `${f(r.enqSpan, 0).padStart(12)} ${f(r.cpu, 2).padStart(6)} ${f(r.rxCpu, 2).padStart(9)} ${f(r.rxElu, 2).padStart(7)} ` +
      `${String(r.missing).padStart(4)} ${String(r.repeats).padStart(3)} ${String(r.bad).padStart(3)}  ${r.load}`);
  }
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
