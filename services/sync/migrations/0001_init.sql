-- The sync schema: items, the example tenant-owned resource of the
-- template (tools/new-service). Applied by libs/db's migration runner with
-- search_path = sync.
--
-- Tenant isolation: every row carries tenant_id, every query of the
-- service filters on it, and row-level security on
-- current_setting('app.tenant_id') is enabled AND forced (so it binds the
-- table owner too). The service switches to the non-superuser role
-- sync_app inside each transaction (SET LOCAL ROLE through
-- set_config('role', .., true), see store.c, SYNC_DB_ROLE), so the
-- policies apply even when DATABASE_URL names a superuser, as in dev and
-- tests.
--
-- CHECK constraints repeat the service's input rules (handlers.c) as the
-- last wall.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sync_app') THEN
    CREATE ROLE sync_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
EXCEPTION
  -- Created concurrently by another database of the cluster, or the
  -- migrating role may not create roles: the deployment then provides
  -- sync_app itself (or sets SYNC_DB_ROLE empty).
  WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
    NULL;
END
$$;

-- Ids are UUIDv7 minted by the service and created_at is the id's own
-- time, so "newest first" by id and by created_at agree.
CREATE TABLE items (
  tenant_id  uuid NOT NULL,
  id         uuid NOT NULL,
  name       text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT items_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
);

-- Row-level security: a request transaction sees its tenant only.
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY items_tenant ON items
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sync_app') THEN
    EXECUTE 'GRANT USAGE ON SCHEMA sync TO sync_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON items TO sync_app';
  END IF;
END
$$;
