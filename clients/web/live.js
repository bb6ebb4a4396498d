/*
 * live.js - the console's channels over one realtime WebSocket, with
 * recovery.
 *
 * Browsers cannot set Authorization on a WebSocket upgrade, so the token
 * goes in the first frame ({"op":"auth"}). After "ready" each channel
 * (orders.<tenant>, and devices.<tenant> for staff and above) is
 * subscribed; after a reconnect each is subscribed with the last offset
 * and epoch seen on it, and the answer's publications fill the gap. When
 * the server says recovered:false (history gone, epoch changed) that
 * channel's owner reloads over HTTP (onReset). A new access token is
 * handed to the live connection with {"op":"refresh"}. Close 4001 (bad or
 * expired token) and 4003 (revoked, logged out, removed) end the session
 * (onEnd); any other close reconnects with exponential backoff and
 * jitter. onState(kind, on, why) reports each channel's state.
 */

export function sameOriginUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/v1/realtime`;
}

export class Live {
  // subs: { kind: { onPub, onReset } }, kind 'orders' -> orders.<tenant
  // id of the token>. Subscribed in the order given.
  constructor({ url, token, subs, onEnd, onState }) {
    Object.assign(this, { url, token, onEnd, onState });
    this.subs = new Map(Object.entries(subs).map(([kind, s]) =>
      [kind, { ...s, channel: null, pos: null }])); // pos: {offset, epoch} last applied
    this.pending = new Map(); // subscribe id -> kind
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
      case 'ready':
        this.pending.clear();
        for (const [kind, s] of this.subs) {
          s.channel = `${kind}.${f.tenant_id}`;
          const sub = { op: 'subscribe', id: this.nextId++, channel: s.channel };
          if (s.pos) sub.recover = s.pos;
          this.pending.set(sub.id, kind);
          this.ws.send(JSON.stringify(sub));
        }
        break;
      case 'subscribed':
        this.subscribed(f);
        break;
      case 'pub':
        this.pub(f);
        break;
      case 'error': {
        const kind = this.pending.get(f.id) || 'orders';
        this.pending.delete(f.id);
        this.onState(kind, false, f.message || f.code);
        break;
      }
      default:
        break; // refreshed, unsubscribed: nothing to do
    }
  }

  subscribed(f) {
    const kind = this.pending.get(f.id);
    const s = kind && this.subs.get(kind);
    if (!s) return;
    this.pending.delete(f.id);
    this.backoff = 500;
    if (s.pos !== null && f.recovered) {
      for (const p of f.publications || []) this.pub(p);
    } else {
      // First subscription, or the gap cannot be filled: the state is
      // reloaded over HTTP after the subscription is live, so nothing
      // published meanwhile is missed.
      s.pos = { offset: f.offset, epoch: f.epoch };
      s.onReset();
    }
    this.onState(kind, true);
  }

  pub(p) {
    for (const s of this.subs.values()) {
      if (p.channel !== s.channel) continue;
      s.pos = { offset: p.offset, epoch: p.epoch };
      s.onPub(p.event);
    }
  }

  lost(code) {
    for (const kind of this.subs.keys()) this.onState(kind, false);
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
