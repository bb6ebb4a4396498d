-- The customers' menu read of services/orders/store.c (store_list_products:
-- active, non-deleted products of one tenant by category, name, id, with
-- its columns), for pgbench -M prepared. :tid is the tenant's id.
SELECT id::text, name, description, category, price_cents, stock,
       low_stock_threshold, active, version,
       floor(extract(epoch FROM created_at) * 1000)::bigint,
       floor(extract(epoch FROM updated_at) * 1000)::bigint
  FROM orders.products
 WHERE tenant_id = :tid::uuid AND deleted_at IS NULL AND (false OR active)
 ORDER BY category, name, id LIMIT 1000;
