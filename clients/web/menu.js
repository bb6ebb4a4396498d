/*
 * menu.js - the menu with stock (GET /v1/products), read-only.
 * textContent only: names and categories are the tenant's input.
 */
import { call } from './api.js';

export async function loadMenu(table, status) {
  const body = table.tBodies[0];
  try {
    const r = await call('GET', '/v1/products');
    body.replaceChildren(...(r.products || []).map(row));
  } catch (e) {
    if (e.status !== 401) status(`Could not load the menu: ${e.message}`);
  }
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
