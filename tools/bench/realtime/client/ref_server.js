// ref_server.js - the reference of tools/bench/realtime: a fan-out server on
// Node's `ws` package, the way its README broadcasts (a WebSocketServer,
// `client.send(data)` to each subscriber), speaking the part of realtime's
// protocol the benchmark uses.
//
// It receives the same events as realtime: for each tenant it holds one
// upstream connection to realtime, subscribed to orders.<tenant>, and
// forwards every `pub` frame it gets there, byte for byte, to its own
// subscribers of that channel. So the load client sees the same frames from
// both servers; the reference's latency includes realtime's delivery to one
// connection per channel (small next to a fan-out to thousands).
//
// Protocol kept: on connection {"op":"ready"}; {"op":"subscribe","id",
// "channel"} -> {"op":"subscribed","id","channel"}. Not kept: tokens (the
// reference authenticates nobody; realtime verifies a token per
// connection), history, recovery, send-queue bounds.
//
// Environment: PORT (listens on 127.0.0.1), UPSTREAM (realtime's ws:// URL),
// TENANTS (a file of "TENANT=<id> <token> <products>" lines). Prints
// "LISTENING" once every upstream subscription is answered; exits on
// SIGTERM or when its parent closes stdin.
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const channels = new Map(); // channel -> Set of subscribed sockets

function upstream(url, tenantId, token) {
  return new Promise((resolve, reject) => {
    const channel = 'orders.' + tenantId;
    const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + token } });
    ws.on('error', reject);
    ws.on('close', (code) => {
      console.error(`upstream ${channel} closed: ${code}`);
      process.exit(1);
    });
    ws.on('message', (data, isBinary) => {
      // A pub frame starts with {"op":"pub": forward it untouched.
      if (data.length > 10 && data[7] === 0x70 /* p */ && data[8] === 0x75) {
        const subs = channels.get(channel);
        if (subs !== undefined) for (const c of subs) c.send(data, { binary: isBinary });
        return;
      }
      const m = JSON.parse(data.toString());
      if (m.op === 'ready') ws.send(JSON.stringify({ op: 'subscribe', id: 1, channel }));
      else if (m.op === 'subscribed') resolve();
      else reject(new Error('upstream: ' + data.toString()));
    });
  });
}

function serve(port) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096 });
  wss.on('connection', (ws) => {
    const mine = new Set();
    ws.on('error', () => {});
    ws.on('message', (data) => {
      let m;
      try {
        m = JSON.parse(data.toString());
      } catch (e) {
        return;
      }
      if (m.op !== 'subscribe' || typeof m.channel !== 'string') return;
      let subs = channels.get(m.channel);
      if (subs === undefined) channels.set(m.channel, (subs = new Set()));
      subs.add(ws);
      mine.add(m.channel);
      ws.send(JSON.stringify({ op: 'subscribed', id: m.id, channel: m.channel }));
    });
    ws.on('close', () => {
      for (const ch of mine) channels.get(ch).delete(ws);
    });
    ws.send('{"op":"ready"}');
  });
  return new Promise((resolve) => wss.on('listening', resolve));
}

const { WebSocketServer } = WebSocket;

async function main() {
  const lines = fs.readFileSync(process.env.TENANTS, 'utf8').split('\n');
  const tenants = lines.filter((l) => l.startsWith('TENANT=')).map((l) => l.slice(7).split(' '));
  await Promise.all(tenants.map(([id, token]) => upstream(process.env.UPSTREAM, id, token)));
  await serve(Number(process.env.PORT));
  console.log('LISTENING');
}

process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
