// receiver.js - the webhook receiver of the notifications benchmark: a
// plain node:http server on 127.0.0.1 that answers every POST 200 at once
// and records, per `webhook-id`, the wall-clock arrival time (ms, sub-ms
// precision) of the complete request. It checks every Standard Webhooks
// signature with its own HMAC code (node:crypto) and counts bad ones, so
// both sides are proven to sign the same way. Both sides deliver to this
// one process, one phase at a time.
//
// Control (from the driver, same port): GET /__reset starts a phase,
// GET /__count answers the number of distinct ids so far, GET /__dump
// answers {arrivals:{id:ms}, requests, repeats, badSignatures, cpuMs, elu}
// where cpuMs is this process's CPU time and elu the event loop's
// utilisation since the reset (elu < 1: it waited for requests, i.e. it
// was not the bottleneck). Prints LISTENING <port>; exits when stdin closes.
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');

const secret = process.env.SECRET || '';
let key = null;
let arrivals, requests, repeats, bad, cpu0, elu0;
let held = null; // answers held back while /__hold is on (the drain phase)

function reset() {
  arrivals = new Map();
  requests = 0;
  repeats = 0;
  bad = 0;
  cpu0 = process.cpuUsage();
  elu0 = performance.eventLoopUtilization();
}
reset();

function signedOk(req, body) {
  if (key === null) return false;
  const id = req.headers['webhook-id'];
  const ts = req.headers['webhook-timestamp'];
  const sigs = String(req.headers['webhook-signature'] || '').split(' ');
  const want = crypto.createHmac('sha256', key).update(`${id}.${ts}.`)
    .update(body).digest('base64');
  return sigs.some((s) => s === `v1,${want}`);
}

function control(req, res) {
  const url = new URL(req.url, 'http://x');
  let out = '';
  if (url.pathname === '/__reset') {
    const s = url.searchParams.get('secret');
    if (s) key = Buffer.from(s.replace(/^whsec_/, ''), 'base64');
    reset();
  } else if (url.pathname === '/__hold') {
    held = [];
  } else if (url.pathname === '/__release') {
    const h = held || [];
    held = null;
    for (const r of h) answer(r);
  } else if (url.pathname === '/__count') {
    out = JSON.stringify({ count: arrivals.size, requests });
  } else if (url.pathname === '/__dump') {
    const cpu = process.cpuUsage(cpu0);
    out = JSON.stringify({
      arrivals: Object.fromEntries(arrivals), requests, repeats,
      badSignatures: bad, cpuMs: (cpu.user + cpu.system) / 1000,
      elu: performance.eventLoopUtilization(elu0).utilization,
    });
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(out);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') return control(req, res);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const at = performance.timeOrigin + performance.now();
    const id = String(req.headers['webhook-id'] || '');
    requests++;
    if (arrivals.has(id)) repeats++;
    else arrivals.set(id, at);
    if (!signedOk(req, Buffer.concat(chunks))) bad++;
    if (held) held.push(res);
    else answer(res);
  });
});

function answer(res) {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
  res.end('ok');
}
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => {
  console.log(`LISTENING ${server.address().port}`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
