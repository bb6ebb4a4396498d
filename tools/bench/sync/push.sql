-- pgbench script: what one pushed createOrder costs in PostgreSQL, statement
-- for statement - orders' CreateOrder transaction with the device's
-- Idempotency-Key (libs/idem: the key's advisory lock, its lookup, the
-- order as tools/bench/orders/create_order.sql writes it - the change-log
-- trigger fires here too - and the key's row), then sync's record of the
-- mutation (services/sync/store_push.c, record_fn: last_mutation_id
-- advanced, the result stored). Each pgbench client is one device
-- (:client_id picks it from d0..d15). Run with -M prepared by
-- tools/bench/sync/run.sh.
\set a random(1, 20)
\set b random(1, 19)
\set b CASE WHEN :b >= :a THEN :b + 1 ELSE :b END
\set n random(1, 1000000000)
BEGIN;
SELECT set_config('app.tenant_id', :tid, true), set_config('role', 'orders_app', true);
SELECT pg_try_advisory_xact_lock(hashtextextended('orders|' || :tid::text || '|dev|' || :n::text, 0));
SELECT request_hash, response_code, response, expires_at > now() FROM orders.idempotency
  WHERE tenant_id = :tid::uuid AND principal = 'dev' AND key = 'device-bench-' || :n::text;
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
INSERT INTO orders.idempotency AS t (tenant_id, principal, key, method, request_hash, response_code, response, expires_at)
  VALUES (:tid::uuid, 'dev', 'device-bench-' || :n::text || '-' || gen_random_uuid()::text, 'CreateOrder', decode(repeat('ab', 32), 'hex'), 0, decode(repeat('0a', 400), 'hex'), now() + interval '1 day');
COMMIT;
\set d :client_id % 16
BEGIN;
SELECT set_config('app.tenant_id', :tid, true), set_config('role', 'sync_app', true);
UPDATE sync.devices SET last_mutation_id = last_mutation_id + 1
  WHERE tenant_id = :tid::uuid AND id = (ARRAY[:d0, :d1, :d2, :d3, :d4, :d5, :d6, :d7, :d8, :d9, :d10, :d11, :d12, :d13, :d14, :d15]::uuid[])[:d + 1]
  RETURNING last_mutation_id AS mid \gset
INSERT INTO sync.mutations (tenant_id, device_id, id, name, status, result)
  VALUES (:tid::uuid, (ARRAY[:d0, :d1, :d2, :d3, :d4, :d5, :d6, :d7, :d8, :d9, :d10, :d11, :d12, :d13, :d14, :d15]::uuid[])[:d + 1], :mid, 'createOrder', 'applied', decode(repeat('0a', 120), 'hex'));
COMMIT;
