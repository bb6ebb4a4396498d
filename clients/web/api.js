/*
 * api.js - the HTTP API and the session.
 *
 * Tokens live only in this module's variables: nothing is written to
 * localStorage, sessionStorage or a cookie, so a script injected into the
 * page cannot read a token from storage, and a reload means logging in
 * again (the price of that choice). The access token is refreshed before
 * it expires (at 80 % of its lifetime) and once more when a call answers
 * 401; refreshes are single-flight (a refresh token is spent on use, and
 * presenting a spent one revokes the family). When a refresh fails the
 * session is over: onEnd() (the login screen) is called once.
 */

let session = null; // {access, refresh, expiresIn, user}
let refreshing = null; // the in-flight refresh, shared
let timer = null;
const listeners = { end: [], token: [] };

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
  }
}

export function on(event, fn) { listeners[event].push(fn); }

export function user() { return session && session.user; }
export function accessToken() { return session && session.access; }

async function send(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  if (text) { try { json = JSON.parse(text); } catch { json = null; } }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

function start(pair, user) {
  session = { access: pair.access_token, refresh: pair.refresh_token,
              expiresIn: pair.expires_in, user: user || (session && session.user) };
  clearTimeout(timer);
  const ms = Math.max(5, pair.expires_in * 0.8) * 1000;
  timer = setTimeout(() => { refresh().catch(() => {}); }, ms);
  for (const fn of listeners.token) fn(session.access);
}

export async function login(tenant, email, password) {
  const r = await send('POST', '/v1/auth/login', { email, password },
                       { 'X-Tenant': tenant });
  start(r, r.user);
  return r.user;
}

/* Ends the session locally (no call) and tells the page why. */
export function end(reason) {
  if (!session) return;
  session = null;
  clearTimeout(timer);
  for (const fn of listeners.end) fn(reason);
}

export function refresh() {
  if (!session) return Promise.reject(new Error('no session'));
  if (!refreshing) {
    const token = session.refresh;
    refreshing = send('POST', '/v1/auth/refresh', { refresh_token: token })
      .then((r) => { if (session) start(r); return r; })
      .catch((e) => {
        end('Your session has ended. Please log in again.');
        throw e;
      })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

/* An authenticated call; a 401 refreshes once and retries. */
export async function call(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    if (!session) throw new ApiError(401, null);
    const token = session.access;
    try {
      return await send(method, path, body, { Authorization: `Bearer ${token}` });
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401 || attempt > 0) throw e;
      if (session && session.access === token) await refresh();
    }
  }
}

export async function logout() {
  if (!session) return;
  const { access, refresh: rt } = session;
  end('You have logged out.');
  try {
    await send('POST', '/v1/auth/logout', { refresh_token: rt },
               { Authorization: `Bearer ${access}` });
  } catch { /* the session is gone here either way */ }
}
