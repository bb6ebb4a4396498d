-- Pruning the change log (issue 11; HTTP-API.md "a cursor older than the
-- kept log -> reset"). Applied by libs/db's migration runner with
-- search_path = orders.
--
-- The janitor (janitor.c, store_changes.c) drops the rows of entities that
-- are finished - a delivered or cancelled order, a deleted product - once
-- their last change is older than ORDERS_CHANGES_RETENTION, and raises
-- the tenant's change_seq.pruned_through to the highest seq it dropped:
-- a pull from an older cursor is answered reset, and the client's reload
-- from 0 still finds every live entity (their rows are never pruned).
--
-- The janitor first lists the tenants that have such rows across tenants
-- (app.orders_janitor = 'on'; SELECT only), then prunes each tenant in
-- that tenant's own transaction under the ordinary tenant policies.
CREATE POLICY changes_janitor ON changes FOR SELECT
  USING (current_setting('app.orders_janitor', true) = 'on');
