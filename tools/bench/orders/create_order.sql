-- pgbench script: the orders service's CreateOrder transaction, statement
-- for statement (services/orders/store_orders.c, create_order_fn, without
-- an Idempotency-Key), for an order of two distinct products picked at
-- random from p1..p20, one of each. The event payloads are stand-ins of
-- the size the service writes. Run with -M prepared (parameters, each
-- statement prepared once per connection, as libs/db does) by
-- tools/bench/orders/run.sh.
\set a random(1, 20)
\set b random(1, 19)
\set b CASE WHEN :b >= :a THEN :b + 1 ELSE :b END
BEGIN;
SELECT set_config('app.tenant_id', :tid, true), set_config('role', 'orders_app', true);
SELECT id::text, name, price_cents, stock, low_stock_threshold, active, deleted_at IS NULL
  FROM orders.products
  WHERE tenant_id = :tid::uuid
    AND id = ANY(ARRAY[(ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:a], (ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:b]])
  ORDER BY id FOR UPDATE;
UPDATE orders.products p SET stock = p.stock - l.qty, version = p.version + 1, updated_at = now()
  FROM unnest(ARRAY[(ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:a], (ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:b]], ARRAY[1, 1]::int[]) AS l(id, qty)
  WHERE p.tenant_id = :tid::uuid AND p.id = l.id AND p.stock IS NOT NULL;
WITH o AS (INSERT INTO orders.orders (tenant_id, id, total_cents, currency, table_id, notes, customer_id)
           VALUES (:tid::uuid, gen_random_uuid(), 300, 'EUR', NULL, '', NULL)
           RETURNING id, created_at),
     i AS (INSERT INTO orders.order_items (tenant_id, order_id, line_no, product_id, name, unit_price_cents, quantity, line_total_cents)
           SELECT :tid::uuid, o.id, (l.n - 1)::int, p.id, p.name, p.price_cents, l.qty, p.price_cents * l.qty
           FROM o, unnest(ARRAY[(ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:a], (ARRAY[:p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12, :p13, :p14, :p15, :p16, :p17, :p18, :p19, :p20]::uuid[])[:b]], ARRAY[1, 1]::int[]) WITH ORDINALITY AS l(id, qty, n)
           JOIN orders.products p ON p.tenant_id = :tid::uuid AND p.id = l.id)
SELECT floor(extract(epoch FROM created_at) * 1000)::bigint FROM o;
INSERT INTO orders.outbox (event_id, topic, type, tenant_id, payload)
  VALUES (gen_random_uuid(), 'orders.' || :tid, 'OrderCreated', :tid::uuid, decode(repeat('0a', 300), 'hex'));
INSERT INTO orders.outbox (event_id, topic, type, tenant_id, payload)
  VALUES (gen_random_uuid(), 'kitchen.' || :tid, 'KitchenTicket', :tid::uuid, decode(repeat('0a', 150), 'hex'));
COMMIT;
