-- The per-tenant change log that the sync service's pull reads (issue 11;
-- HTTP-API.md "Offline sync and devices"). Applied by libs/db's migration
-- runner with search_path = orders.
--
-- Every change of an order writes, in its own transaction, the next number
-- of the tenant's sequence (change_seq.last + 1) into the entity's one row
-- of `changes` (the newest change wins: pull returns the latest state of
-- each entity once). The UPDATE of change_seq locks the tenant's row until
-- commit, so numbers are handed out in commit order: a reader that sees
-- seq n has every seq below it committed too. pruned_through: the highest
-- seq of a change dropped from the log (none are yet: orders are never
-- deleted); a pull from an older cursor is answered "reset".

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
