/*
 * board.js - the kitchen board: the tenant's open orders by status, kept
 * live from the orders.<tenant> channel, one button per order to move it
 * to its next status (POST /v1/orders/{id}/status with its version).
 *
 * State is a map id -> order; a publication or an HTTP answer replaces an
 * order only when its version is not older, and a reload drops only the
 * orders it did not list and that did not arrive live while it ran, so
 * the live stream and an HTTP reload can interleave in any order. Text from the API is always
 * set with textContent (order notes and product names are the tenant's
 * and its customers' input).
 */
import { call, ApiError } from './api.js';

const COLUMNS = ['pending', 'confirmed', 'preparing', 'ready'];
const NEXT = { pending: 'confirmed', confirmed: 'preparing', preparing: 'ready',
               ready: 'delivered' };

export class Board {
  constructor(root, { announce, status }) {
    this.root = root;
    this.announce = announce;
    this.status = status;
    this.orders = new Map();
    this.fresh = new Set(); // ids that arrived live (highlighted)
    this.liveDuringReload = new Set();
    this.build();
  }

  build() {
    this.root.textContent = '';
    this.lists = {};
    for (const st of COLUMNS) {
      const col = document.createElement('section');
      col.className = 'column';
      col.setAttribute('aria-labelledby', `col-${st}`);
      const h = document.createElement('h3');
      h.id = `col-${st}`;
      col.append(h);
      const ol = document.createElement('ol');
      ol.dataset.status = st;
      col.append(ol);
      this.root.append(col);
      this.lists[st] = { ol, h };
    }
    this.render();
  }

  apply(order, live) {
    const old = this.orders.get(order.id);
    if (old && old.version > order.version) return;
    this.orders.set(order.id, order);
    if (live && !old && COLUMNS.includes(order.status)) {
      this.fresh.add(order.id);
      this.announce(`New order ${short(order.id)}: ${itemsText(order)}`);
    }
  }

  onEvent(ev) {
    if (ev.type !== 'OrderCreated' && ev.type !== 'OrderStatusChanged') return;
    if (!ev.data || !ev.data.id) return;
    this.apply(ev.data, true);
    this.liveDuringReload.add(ev.data.id);
    this.render();
  }

  async reload() {
    // Orders that arrive live while the lists load are newer than what a
    // list read before them can say: they are kept whatever the lists.
    this.liveDuringReload = new Set();
    const seen = new Map();
    for (const st of COLUMNS) {
      let cursor = '';
      for (let page = 0; page < 5; page++) { // at most 500 open per column
        const q = `status=${st}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const r = await call('GET', `/v1/orders?${q}`);
        for (const o of r.orders || []) seen.set(o.id, o);
        if (!r.next_cursor) break;
        cursor = r.next_cursor;
      }
    }
    // Orders no longer open drop out; ones listed replace older copies.
    for (const [id, o] of this.orders)
      if (!seen.has(id) && !this.liveDuringReload.has(id) && COLUMNS.includes(o.status))
        this.orders.delete(id);
    for (const o of seen.values()) this.apply(o, false);
    this.render();
    // Reloads completed, for whoever waits on one (the browser test).
    this.root.dataset.reloads = String(Number(this.root.dataset.reloads || 0) + 1);
  }

  async advance(order, button) {
    button.disabled = true;
    const next = NEXT[order.status];
    try {
      const o = await call('POST', `/v1/orders/${order.id}/status`,
                           { status: next, version: order.version });
      this.apply(o, false);
      this.status(`Order ${short(o.id)} is ${o.status}.`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return; // session over
      this.status(`Order ${short(order.id)} could not be moved: ${e.message}`);
      try { this.apply(await call('GET', `/v1/orders/${order.id}`), false); } catch { /* shown above */ }
    }
    this.render();
  }

  render() {
    const by = Object.fromEntries(COLUMNS.map((s) => [s, []]));
    for (const o of this.orders.values()) if (by[o.status]) by[o.status].push(o);
    for (const st of COLUMNS) {
      const { ol, h } = this.lists[st];
      const list = by[st].sort((a, b) => a.created_at.localeCompare(b.created_at));
      h.textContent = `${cap(st)} (${list.length})`;
      ol.replaceChildren(...list.map((o) => this.card(o)));
    }
  }

  card(o) {
    const li = document.createElement('li');
    li.className = this.fresh.has(o.id) ? 'order new' : 'order';
    li.dataset.orderId = o.id;
    const title = document.createElement('p');
    const strong = document.createElement('strong');
    strong.textContent = `#${short(o.id)}`;
    title.append(strong, ` · ${o.total} ${o.currency}`);
    const ul = document.createElement('ul');
    for (const it of o.items || []) {
      const li2 = document.createElement('li');
      li2.textContent = `${it.quantity} × ${it.name}`;
      ul.append(li2);
    }
    li.append(title, ul);
    if (o.notes) {
      const n = document.createElement('p');
      n.textContent = `Note: ${o.notes}`;
      li.append(n);
    }
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'primary';
    b.textContent = `Mark ${NEXT[o.status]}`;
    b.setAttribute('aria-label', `Mark order ${short(o.id)} ${NEXT[o.status]}`);
    b.addEventListener('click', () => this.advance(o, b));
    li.append(b);
    return li;
  }
}

function short(id) { return id.slice(-6); }
function cap(s) { return s[0].toUpperCase() + s.slice(1); }
function itemsText(o) {
  return (o.items || []).map((i) => `${i.quantity} × ${i.name}`).join(', ');
}
