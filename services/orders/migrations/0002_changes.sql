-- The per-tenant change log that the sync service's pull reads (issue 11;
-- HTTP-API.md "Offline sync and devices"). Applied by libs/db's migration
-- runner with search_path = orders.
--
-- Every change of an order, product or table writes, in its own
-- transaction (a trigger, so no write path can forget it: stock taken by
-- an order and given back by a cancel count too), the next number of the
-- tenant's sequence (change_seq.last + 1) into the entity's one row of
-- `changes` (the newest change wins: pull returns the latest state of each
-- entity once). The UPDATE of change_seq locks the tenant's row until
-- commit, so numbers are handed out in commit order: a reader that sees
-- seq n has every seq below it committed too. The price is that a
-- tenant's writes take turns from their first change to their commit;
-- every write path locks its rows (products in id order, the order) before
-- its first change, so the turn never waits inside a lock cycle.
-- pruned_through: the highest seq of a change dropped from the log (none
-- are yet: orders and products are never hard-deleted); a pull from an
-- older cursor is answered "reset".

CREATE TABLE change_seq (
  tenant_id      uuid PRIMARY KEY,
  last           bigint NOT NULL DEFAULT 0,
  pruned_through bigint NOT NULL DEFAULT 0,
  CONSTRAINT change_seq_order CHECK (pruned_through <= last)
);

CREATE TABLE changes (
  tenant_id  uuid NOT NULL,
  entity     text NOT NULL,
  entity_id  uuid NOT NULL,
  seq        bigint NOT NULL,
  op         text NOT NULL,
  version    bigint NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, entity, entity_id),
  CONSTRAINT changes_seq_unique UNIQUE (tenant_id, seq),
  CONSTRAINT changes_entity CHECK (entity IN ('order', 'product', 'table')),
  CONSTRAINT changes_op CHECK (op IN ('upsert', 'delete'))
);

-- The trigger: TG_ARGV[0] is the entity. Runs as the writing role, under
-- its row-level security (the row's tenant is the transaction's).
CREATE FUNCTION record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ent text := TG_ARGV[0];
  op  text := 'upsert';
  ver bigint := 1;
  s   bigint;
BEGIN
  -- Nested: PL/pgSQL resolves NEW's fields per expression, so a field
  -- another entity lacks must not appear in the same condition.
  IF ent <> 'table' THEN
    ver := NEW.version;
  END IF;
  IF ent = 'product' THEN
    IF NEW.deleted_at IS NOT NULL THEN
      op := 'delete';
    END IF;
  END IF;
  INSERT INTO orders.change_seq AS cs (tenant_id, last)
    VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET last = cs.last + 1
    RETURNING last INTO s;
  INSERT INTO orders.changes (tenant_id, entity, entity_id, seq, op, version)
    VALUES (NEW.tenant_id, ent, NEW.id, s, op, ver)
    ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE SET
      seq = EXCLUDED.seq, op = EXCLUDED.op, version = EXCLUDED.version,
      changed_at = now();
  RETURN NULL;
END
$$;

CREATE TRIGGER orders_change AFTER INSERT OR UPDATE ON orders
  FOR EACH ROW EXECUTE FUNCTION record_change('order');
CREATE TRIGGER products_change AFTER INSERT OR UPDATE ON products
  FOR EACH ROW EXECUTE FUNCTION record_change('product');
CREATE TRIGGER tables_change AFTER INSERT OR UPDATE ON tables
  FOR EACH ROW EXECUTE FUNCTION record_change('table');

ALTER TABLE change_seq ENABLE ROW LEVEL SECURITY;
ALTER TABLE change_seq FORCE ROW LEVEL SECURITY;
CREATE POLICY change_seq_tenant ON change_seq
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE changes FORCE ROW LEVEL SECURITY;
CREATE POLICY changes_tenant ON changes
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON change_seq, changes '
            'TO orders_app';
  END IF;
END
$$;
