/*
 * menu.js - the menu with stock (GET /v1/products), read-only. The list
 * comes a page at a time (at most 100); every page is read, following
 * next_cursor, before the table is drawn.
 * textContent only: names and categories are the tenant's input.
 */
import { call } from './api.js';

export async function loadMenu(table, status) {
  const body = table.tBodies[0];
  try {
    body.replaceChildren(...(await allProducts()).map(row));
  } catch (e) {
    if (e.status !== 401) status(`Could not load the menu: ${e.message}`);
  }
}

const PAGES_MAX = 100; // 100 x 100 products: beyond any tenant's menu

async function allProducts() {
  const all = [];
  let cursor = '';
  for (let i = 0; i < PAGES_MAX; i++) {
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const r = await call('GET', `/v1/products?limit=100${q}`);
    all.push(...(r.products || []));
    if (!r.next_cursor) break;
    cursor = r.next_cursor;
  }
  return all;
}

function row(p) {
  const tr = document.createElement('tr');
  tr.dataset.productId = p.id;
  const cells = [p.name, p.category || '', (p.price_cents / 100).toFixed(2),
                 p.stock === null || p.stock === undefined ? 'unlimited' : String(p.stock),
                 p.active ? 'yes' : 'no'];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement(i === 0 ? 'th' : 'td');
    if (i === 0) td.scope = 'row';
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}
