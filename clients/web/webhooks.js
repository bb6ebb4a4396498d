/*
 * webhooks.js - webhook endpoints, their deliveries (dead letters first)
 * and retrying a dead one (POST /v1/deliveries/{id}/retry). Admins and
 * owners only: the API answers 403 to anyone else, shown as a message.
 */
import { call } from './api.js';

const $ = (id) => document.getElementById(id);
let current = null; // the endpoint whose deliveries are shown

export async function loadWebhooks(status) {
  const ul = $('webhooks');
  try {
    const r = await call('GET', '/v1/webhooks');
    ul.replaceChildren(...(r.webhooks || []).map((w) => item(w, status)));
    if (!(r.webhooks || []).length) status('No webhook endpoints yet.');
  } catch (e) {
    ul.replaceChildren();
    if (e.status === 403) status('Webhooks are for admins and owners.');
    else if (e.status !== 401) status(`Could not load webhooks: ${e.message}`);
  }
}

function item(w, status) {
  const li = document.createElement('li');
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = `${w.url} (${(w.events || []).join(', ')})${w.active ? '' : ' — inactive'}`;
  b.addEventListener('click', () => { current = w; deliveries(status); });
  li.append(b);
  return li;
}

async function deliveries(status) {
  if (!current) return;
  $('deliveries-box').hidden = false;
  $('deliveries-title').textContent = `Deliveries of ${current.url}`;
  const st = $('delivery-filter').value;
  const q = st ? `?status=${st}&limit=100` : '?limit=100';
  try {
    const r = await call('GET', `/v1/webhooks/${current.id}/deliveries${q}`);
    $('deliveries').tBodies[0].replaceChildren(...(r.deliveries || []).map((d) => row(d, status)));
  } catch (e) {
    if (e.status !== 401) status(`Could not load deliveries: ${e.message}`);
  }
}

function row(d, status) {
  const tr = document.createElement('tr');
  for (const text of [d.event_type, d.status, String(d.attempts), d.last_error || '']) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  const td = document.createElement('td');
  if (d.status === 'dead') {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Retry';
    b.setAttribute('aria-label', `Retry delivery of ${d.event_type} ${d.event_id}`);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await call('POST', `/v1/deliveries/${d.id}/retry`);
        status('Delivery queued again.');
        deliveries(status);
      } catch (e) {
        b.disabled = false;
        if (e.status !== 401) status(`Retry failed: ${e.message}`);
      }
    });
    td.append(b);
  }
  tr.append(td);
  return tr;
}

export function initWebhooks(status) {
  $('delivery-filter').addEventListener('change', () => deliveries(status));
}
