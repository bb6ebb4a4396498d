/*
 * app.js - the console's entry: the login screen, the sections (board,
 * menu, webhooks, devices, campaigns) and the wiring between the session
 * (api.js), the realtime connection (live.js: orders.<tenant> for the
 * board and, for staff and above, devices.<tenant> for the devices) and
 * the sections. A section whose calls the contract allows only from a
 * role up (devices: staff+, campaigns: admin+) is not offered below it;
 * its 403, should the role change meanwhile, is shown as a message.
 *
 * The realtime URL comes from /app/config.json, which the gateway
 * generates from GATEWAY_APP_REALTIME_URL; null means the same origin's
 * /v1/realtime (an ingress routes it there). The end of a session, for
 * whatever reason (logout, a failed refresh, realtime closing 4001/4003),
 * goes back to the login screen with the reason in a live region.
 */
import * as api from './api.js';
import { Board } from './board.js';
import { Live, sameOriginUrl } from './live.js';
import { loadMenu } from './menu.js';
import { Devices } from './devices.js';
import { initCampaigns, loadCampaigns, stopCampaigns } from './campaigns.js';
import { initWebhooks, loadWebhooks } from './webhooks.js';

const $ = (id) => document.getElementById(id);
const VIEWS = ['board', 'menu', 'webhooks', 'devices', 'campaigns'];
const RANK = { customer: 0, staff: 1, admin: 2, owner: 3 };
let live = null;
let board = null;
let devices = null;
let config = null;

function status(text) { $('status').textContent = text; }
function announce(text) {
  $('announce').textContent = '';
  setTimeout(() => { $('announce').textContent = text; }, 50);
}

function show(view) {
  $('login-view').hidden = view !== 'login';
  for (const v of VIEWS) $(`${v}-view`).hidden = v !== view;
  $('nav').hidden = view === 'login';
  for (const b of $('nav').querySelectorAll('button[data-view]')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  if (view === 'menu') loadMenu($('menu'), status);
  if (view === 'webhooks') loadWebhooks(status);
  if (view === 'campaigns') loadCampaigns(status);
  else stopCampaigns();
}

function allowed(minRole) {
  const u = api.user();
  return !minRole || (u && (RANK[u.role] ?? -1) >= RANK[minRole]);
}

/* Only the sections the user's role may use are offered. */
function offerViews() {
  for (const b of $('nav').querySelectorAll('button[data-min-role]'))
    b.hidden = !allowed(b.dataset.minRole);
}

async function realtimeUrl() {
  if (!config) {
    const r = await fetch('/app/config.json', { cache: 'no-store' });
    config = r.ok ? await r.json() : {};
  }
  return config.realtime_url || sameOriginUrl();
}

function setLive(kind, on, why) {
  const el = $(kind === 'devices' ? 'devices-live' : 'live');
  el.textContent = on ? 'live' : 'offline';
  el.className = on ? 'live on' : 'live';
  if (why) status(`Live updates: ${why}`);
}

async function startLive() {
  board = new Board($('board'), { announce, status });
  const subs = {
    orders: {
      onPub: (ev) => board.onEvent(ev),
      onReset: () => board.reload().catch((e) => {
        // A 401 has ended the session: the login screen says why already.
        if (e.status !== 401) status(`Could not load orders: ${e.message}`);
      }),
    },
  };
  if (allowed('staff')) {
    devices = new Devices($('devices'), status);
    subs.devices = { onPub: (ev) => devices.onEvent(ev), onReset: () => devices.reload() };
  }
  const url = await realtimeUrl();
  live = new Live({
    url,
    token: api.accessToken(),
    subs,
    onEnd: (code) => api.end(code === 4003
      ? 'Your session was revoked. Please log in again.'
      : 'Your session has expired. Please log in again.'),
    onState: setLive,
  });
}

api.on('token', (t) => { if (live) live.refresh(t); });
api.on('end', (reason) => {
  if (live) live.close();
  live = null;
  board = null;
  if (devices) devices.clear();
  devices = null;
  stopCampaigns();
  $('campaigns').tBodies[0].replaceChildren();
  $('board').textContent = '';
  $('password').value = '';
  show('login');
  status(reason);
  $('email').focus();
});

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('login-error');
  err.textContent = '';
  const tenant = $('tenant').value.trim().toLowerCase();
  const email = $('email').value.trim();
  const password = $('password').value;
  if (!tenant || !email || password.length < 8) {
    err.textContent = 'Enter the restaurant, your e-mail and your password (8 characters or more).';
    return;
  }
  try {
    const user = await api.login(tenant, email, password);
    $('password').value = '';
    status(`Logged in as ${user.name} (${user.role}).`);
    offerViews();
    show('board');
    await startLive();
  } catch (x) {
    err.textContent = x.status === 401 ? 'Wrong e-mail or password.'
      : x.status === 429 ? 'Too many attempts: wait a moment and try again.'
      : `Could not log in: ${x.message}`;
  }
});

for (const b of $('nav').querySelectorAll('button[data-view]'))
  b.addEventListener('click', () => {
    status('');
    show(b.dataset.view);
    // Keyboard and screen-reader users land on the section they chose.
    $(`${b.dataset.view}-title`).focus();
  });
$('logout').addEventListener('click', () => api.logout());
$('menu-reload').addEventListener('click', () => loadMenu($('menu'), status));
$('webhooks-reload').addEventListener('click', () => loadWebhooks(status));
$('devices-reload').addEventListener('click', () => { if (devices) devices.reload(); });
$('campaigns-reload').addEventListener('click', () => loadCampaigns(status));
initWebhooks(status);
initCampaigns(status);
show('login');
