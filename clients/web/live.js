/*
 * live.js - one channel over the realtime WebSocket, with recovery.
 *
 * Browsers cannot set Authorization on a WebSocket upgrade, so the token
 * goes in the first frame ({"op":"auth"}). After "ready" the channel is
 * subscribed; after a reconnect it is subscribed with the last offset and
 * epoch seen, and the answer's publications fill the gap. When the server
 * says recovered:false (history gone, epoch changed) the owner reloads
 * over HTTP (onReset). A new access token is handed to the live
 * connection with {"op":"refresh"}. Close 4001 (bad or expired token) and
 * 4003 (revoked, logged out, removed) end the session (onEnd); any other
 * close reconnects with exponential backoff and jitter.
 */

export function sameOriginUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/v1/realtime`;
}

export class Live {
  constructor({ url, token, kind, onPub, onReset, onEnd, onState }) {
    // kind: 'orders' -> the channel orders.<tenant id of the token>
    Object.assign(this, { url, token, kind, onPub, onReset, onEnd, onState });
    this.channel = null;
    this.pos = null; // {offset, epoch} of the last publication applied
    this.backoff = 500;
    this.closed = false;
    this.nextId = 1;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ op: 'auth', token: this.token }));
    ws.onmessage = (m) => this.frame(JSON.parse(m.data));
    ws.onclose = (e) => this.lost(e.code);
    ws.onerror = () => {}; // onclose follows and decides
  }

  frame(f) {
    switch (f.op) {
      case 'ready': {
        this.channel = `${this.kind}.${f.tenant_id}`;
        const sub = { op: 'subscribe', id: this.nextId++, channel: this.channel };
        if (this.pos) sub.recover = this.pos;
        this.ws.send(JSON.stringify(sub));
        break;
      }
      case 'subscribed': {
        this.backoff = 500;
        const asked = this.pos !== null;
        if (asked && f.recovered) {
          for (const p of f.publications || []) this.pub(p);
        } else {
          // First subscription, or the gap cannot be filled: the state is
          // reloaded over HTTP after the subscription is live, so nothing
          // published meanwhile is missed (newer versions win).
          this.pos = { offset: f.offset, epoch: f.epoch };
          this.onReset();
        }
        this.onState(true);
        break;
      }
      case 'pub':
        this.pub(f);
        break;
      case 'error':
        this.onState(false, f.message || f.code);
        break;
      default:
        break; // refreshed, unsubscribed: nothing to do
    }
  }

  pub(p) {
    if (p.channel !== this.channel) return;
    this.pos = { offset: p.offset, epoch: p.epoch };
    this.onPub(p.event);
  }

  lost(code) {
    this.onState(false);
    if (this.closed) return;
    if (code === 4001 || code === 4003) {
      this.closed = true;
      this.onEnd(code);
      return;
    }
    const wait = this.backoff * (0.5 + Math.random());
    this.backoff = Math.min(this.backoff * 2, 30000);
    setTimeout(() => this.connect(), wait);
  }

  refresh(token) {
    this.token = token;
    if (this.ws && this.ws.readyState === WebSocket.OPEN)
      this.ws.send(JSON.stringify({ op: 'refresh', id: this.nextId++, token }));
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close(1000);
  }
}
