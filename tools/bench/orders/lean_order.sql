-- pgbench script: the LEAN order transaction, the minimum work an order
-- needs (issue 14's reference, docs/PERFORMANCE.md "Orders"): lock the
-- two products' stock rows in id order and decrement them in one
-- statement, insert the order and its lines (server names and prices)
-- in one statement, append one outbox row, commit. No tenant setting, no
-- role switch, no idempotency key, no second event: whatever the orders
-- service does beyond this is its overhead. The tables' triggers (the
-- sync change log, docs/PERFORMANCE.md "Sync") run as they do for the
-- service. Two distinct products picked at random from p1..p20, one of
-- each; the event payload is a stand-in of the size the service writes.
-- Run with -M prepared by tools/bench/orders/run.sh.
\set a random(1, 20)
\set b random(1, 19)
\set b CASE WHEN :b >= :a THEN :b + 1 ELSE :b END
BEGIN;
WITH l AS (SELECT id FROM orders.products
           WHERE tenant_id = :tid::uuid
             AND id = ANY(ARRAY[(ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:a], (ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:b]])
           ORDER BY id FOR UPDATE)
UPDATE orders.products p SET stock = p.stock - 1
  FROM l WHERE p.tenant_id = :tid::uuid AND p.id = l.id AND p.stock >= 1;
WITH o AS (INSERT INTO orders.orders (tenant_id, id, total_cents, currency)
           VALUES (:tid::uuid, gen_random_uuid(), 300, 'EUR') RETURNING id)
INSERT INTO orders.order_items (tenant_id, order_id, line_no, product_id, name, unit_price_cents, quantity, line_total_cents)
  SELECT :tid::uuid, o.id, (l.n - 1)::int, p.id, p.name, p.price_cents, 1, p.price_cents
  FROM o, unnest(ARRAY[(ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:a], (ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:b]]) WITH ORDINALITY AS l(id, n)
  JOIN orders.products p ON p.tenant_id = :tid::uuid AND p.id = l.id;
INSERT INTO orders.outbox (event_id, topic, type, tenant_id, payload)
  VALUES (gen_random_uuid(), 'orders.' || :tid, 'OrderCreated', :tid::uuid, decode(repeat('0a', 300), 'hex'));
COMMIT;
