/*
 * devices.js - the tenant's devices (GET /v1/sync/devices): status, last
 * seen, app version, kept live from devices.<tenant> (DeviceOnline and
 * DeviceOffline carry the device as GET /v1/sync/devices/{id} shows it).
 * Staff and above (the API answers 403 to anyone else, shown as a
 * message).
 *
 * A device has no version, so a reload cannot tell a stale answer from a
 * fresh one: devices that arrive live while a reload runs keep their live
 * copy, as the board does with orders. Names and platforms are the
 * tenant's input: textContent only.
 */
import { call } from './api.js';

export class Devices {
  constructor(table, status) {
    this.body = table.tBodies[0];
    this.table = table;
    this.status = status;
    this.devices = new Map();
    this.liveDuringReload = new Set();
  }

  onEvent(ev) {
    if (ev.type !== 'DeviceOnline' && ev.type !== 'DeviceOffline') return;
    if (!ev.data || !ev.data.id) return;
    this.devices.set(ev.data.id, ev.data);
    this.liveDuringReload.add(ev.data.id);
    this.render();
  }

  async reload() {
    this.liveDuringReload = new Set();
    try {
      const r = await call('GET', '/v1/sync/devices');
      const seen = new Map((r.devices || []).map((d) => [d.id, d]));
      for (const id of this.devices.keys())
        if (!seen.has(id) && !this.liveDuringReload.has(id)) this.devices.delete(id);
      for (const [id, d] of seen)
        if (!this.liveDuringReload.has(id)) this.devices.set(id, d);
      this.render();
      this.table.dataset.reloads = String(Number(this.table.dataset.reloads || 0) + 1);
    } catch (e) {
      if (e.status === 403) this.status('Devices are for staff and above.');
      else if (e.status !== 401) this.status(`Could not load devices: ${e.message}`);
    }
  }

  render() {
    const list = [...this.devices.values()].sort((a, b) =>
      (a.status === b.status ? 0 : a.status === 'online' ? -1 : 1) || a.name.localeCompare(b.name));
    this.body.replaceChildren(...list.map(row));
  }

  clear() {
    this.devices.clear();
    this.body.replaceChildren();
  }
}

function row(d) {
  const tr = document.createElement('tr');
  tr.dataset.deviceId = d.id;
  tr.dataset.status = d.status;
  const cells = [d.name, d.platform || '', d.status, when(d.last_seen_at), d.app_version || ''];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement(i === 0 ? 'th' : 'td');
    if (i === 0) td.scope = 'row';
    if (i === 2) td.className = d.status === 'online' ? 'online' : 'offline';
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

export function when(iso) {
  if (!iso) return 'never';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : t.toLocaleString();
}
