// bull_worker.js - the reference: a BullMQ Worker with CONC concurrency
// on queue QUEUE of the Redis on 127.0.0.1:REDIS_PORT, doing what
// notifications' workers do per job: sign the body as Standard Webhooks
// (webhook-id, webhook-timestamp, webhook-signature v1, HMAC-SHA256 with
// the endpoint's whsec_ secret) and POST it to URL with a 10 s timeout,
// any 2xx a success, anything else thrown (so BullMQ retries it). Like
// notifications' senders (a libcurl handle kept per thread) it keeps
// connections to the receiver open (an Agent with keep-alive), unless
// KEEPALIVE=0 (a new connection per request). Prints READY once
// connected; exits when stdin closes.
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const { Worker } = require('bullmq');

const key = Buffer.from(process.env.SECRET.replace(/^whsec_/, ''), 'base64');
const target = new URL(process.env.URL);
const agent = process.env.KEEPALIVE === '0'
  ? false : new http.Agent({ keepAlive: true, maxSockets: 256 });

function post(id, body) {
  const ts = Math.floor(Date.now() / 1000);
  const sig = crypto.createHmac('sha256', key).update(`${id}.${ts}.`)
    .update(body).digest('base64');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: target.hostname, port: target.port, path: target.pathname,
      method: 'POST', agent, timeout: 10000,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'user-agent': 'restaurant-webhooks/1',
        'webhook-id': id, 'webhook-timestamp': String(ts),
        'webhook-signature': `v1,${sig}`,
      },
    }, (res) => {
      res.resume(); // the body is not needed
      res.on('end', () => (res.statusCode >= 200 && res.statusCode < 300
        ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

const worker = new Worker(process.env.QUEUE,
  (job) => post(job.data.id, job.data.body), {
    connection: { host: '127.0.0.1', port: Number(process.env.REDIS_PORT) },
    concurrency: Number(process.env.CONC),
  });
worker.on('error', (e) => console.error('worker:', e.message));
worker.waitUntilReady().then(() => console.log('READY'));
process.stdin.on('end', () => worker.close().finally(() => process.exit(0)));
process.stdin.resume();
