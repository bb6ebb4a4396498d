/*
 * campaigns.js - campaigns (admins and owners): the list with status and
 * stats (GET /v1/campaigns, the newest 100), a form to create one
 * (POST /v1/campaigns: name, title, body, channels, audience roles and
 * an optional schedule), send now (POST /v1/campaigns/{id}/send), and
 * delete (DELETE: a scheduled one is cancelled, anything else but a
 * sending one is removed). While any campaign is `sending` the list is
 * read again every 2 s so its stats move; the polling stops when none
 * is, when the section is left and at the end of the session.
 * Names, titles and bodies are set as text.
 */
import { call } from './api.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
let timer = null;
let shown = false;

export async function loadCampaigns(status) {
  shown = true;
  clearTimeout(timer);
  timer = null;
  try {
    const r = await call('GET', '/v1/campaigns');
    const list = r.campaigns || [];
    $('campaigns').tBodies[0].replaceChildren(...list.map((c) => row(c, status)));
    if (shown && list.some((c) => c.status === 'sending'))
      timer = setTimeout(() => loadCampaigns(status), POLL_MS);
  } catch (e) {
    $('campaigns').tBodies[0].replaceChildren();
    if (e.status === 403) status('Campaigns are for admins and owners.');
    else if (e.status !== 401) status(`Could not load campaigns: ${e.message}`);
  }
}

export function stopCampaigns() {
  shown = false;
  clearTimeout(timer);
  timer = null;
}

function row(c, status) {
  const tr = document.createElement('tr');
  tr.dataset.campaignId = c.id;
  tr.dataset.status = c.status;
  const st = c.stats || {};
  const cells = [c.name, c.status, (c.channels || []).join(', '),
                 ((c.audience && c.audience.roles) || []).join(', '),
                 String(st.targeted ?? 0), String(st.delivered ?? 0), String(st.failed ?? 0),
                 c.sent_at ? new Date(c.sent_at).toLocaleString()
                   : c.scheduled_at ? `scheduled ${new Date(c.scheduled_at).toLocaleString()}` : ''];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement(i === 0 ? 'th' : 'td');
    if (i === 0) td.scope = 'row';
    td.textContent = text;
    tr.append(td);
  }
  const td = document.createElement('td');
  if (c.status === 'draft' || c.status === 'scheduled')
    td.append(action('Send now', c, status, () => call('POST', `/v1/campaigns/${c.id}/send`),
                     'Campaign is being sent.'));
  if (c.status !== 'sending')
    td.append(action(c.status === 'scheduled' ? 'Cancel' : 'Delete', c, status,
                     () => call('DELETE', `/v1/campaigns/${c.id}`),
                     c.status === 'scheduled' ? 'Campaign cancelled.' : 'Campaign deleted.'));
  tr.append(td);
  return tr;
}

function action(label, c, status, fn, done) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.setAttribute('aria-label', `${label}: ${c.name}`);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await fn();
      status(done);
    } catch (e) {
      if (e.status !== 401) status(`${label} failed: ${e.message}`);
    }
    loadCampaigns(status);
  });
  return b;
}

function checked(name) {
  return [...document.querySelectorAll(`#campaign-form input[name="${name}"]:checked`)]
    .map((i) => i.value);
}

async function create(status) {
  const err = $('campaign-error');
  err.textContent = '';
  const body = {
    name: $('campaign-name').value.trim(),
    title: $('campaign-title').value.trim(),
    body: $('campaign-body').value,
    channels: checked('channel'),
    audience: { roles: checked('role') },
  };
  const at = $('campaign-at').value; // datetime-local: the browser's zone
  if (at) body.scheduled_at = new Date(at).toISOString();
  if (!body.name || !body.title || !body.channels.length || !body.audience.roles.length) {
    err.textContent = 'Give a name, a title, at least one channel and one role.';
    return;
  }
  try {
    const c = await call('POST', '/v1/campaigns', body);
    $('campaign-form').reset();
    status(`Campaign ${c.name} created (${c.status}).`);
    loadCampaigns(status);
  } catch (e) {
    if (e.status === 403) err.textContent = 'Campaigns are for admins and owners.';
    else if (e.status !== 401) err.textContent = `Could not create the campaign: ${e.message}`;
  }
}

export function initCampaigns(status) {
  $('campaign-form').addEventListener('submit', (e) => { e.preventDefault(); create(status); });
}
