-- The hybrid logical clock of the last write made through sync to each
-- entity (last_write_wins, README "Push"; the format: hlc.h): written in
-- the transaction of the mutation's record, with the version that write
-- produced. When the entity's version has moved past it, the last write
-- was not sync's (staff through the API) and its clock is the entity's
-- updated_at.
CREATE TABLE entity_clocks (
  tenant_id uuid NOT NULL,
  entity    text NOT NULL CHECK (entity IN ('order')),
  entity_id uuid NOT NULL,
  version   bigint NOT NULL CHECK (version >= 1),
  hlc       text NOT NULL CHECK (length(hlc) BETWEEN 1 AND 100),
  PRIMARY KEY (tenant_id, entity, entity_id)
);

ALTER TABLE entity_clocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE entity_clocks FORCE ROW LEVEL SECURITY;
CREATE POLICY entity_clocks_tenant ON entity_clocks
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sync_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON entity_clocks TO sync_app';
  END IF;
END
$$;
