-- The tenant directory: tenants, their custom domains, and the outbox of
-- tenants.changed events. Applied with search_path = tenants.
--
-- Row-level security. These rows are read across tenants by design
-- (Resolve maps a host to a tenant before anybody is authenticated), so
-- the policies admit two kinds of transaction: "directory" work (Resolve,
-- CreateTenant, Suspend/Resume, the reaper, the outbox relay), which sets
-- app.directory = 'on', and member calls (GetTenant, UpdateTenant, domain
-- changes), which set app.tenant_id and then see only their own tenant.
-- FORCE makes the policies apply to the table owner too. Superusers
-- bypass RLS, so the service switches to the non-superuser role
-- tenants_app inside each transaction (SET LOCAL ROLE through
-- set_config('role', ..), see store.c, TENANTS_DB_ROLE): the policies bind
-- even when DATABASE_URL names a superuser, as in dev and tests.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenants_app') THEN
    CREATE ROLE tenants_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
EXCEPTION
  -- Created concurrently by another database of the cluster, or the
  -- migrating role may not create roles: the deployment then provides
  -- tenants_app itself (or sets TENANTS_DB_ROLE empty).
  WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
    NULL;
END
$$;

CREATE TABLE tenants (
  id          uuid PRIMARY KEY,
  slug        text NOT NULL,
  name        text NOT NULL,
  currency    char(3) NOT NULL,
  status      text NOT NULL DEFAULT 'provisioning',
  -- From change_seq on every change to the tenant or its domains: orders
  -- the Redis cache writes (a stale write never replaces a newer one).
  version     bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  -- The database, not the service, keeps slugs unique (23505 ->
  -- ALREADY_EXISTS), also against concurrent creates. A provisioning row
  -- holds its slug until it is activated or reaped.
  CONSTRAINT tenants_slug_key UNIQUE (slug),
  CONSTRAINT tenants_slug_format
    CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$'),
  CONSTRAINT tenants_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
  CONSTRAINT tenants_status_values
    CHECK (status IN ('provisioning', 'active', 'suspended')),
  CONSTRAINT tenants_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
);

-- The reaper looks for old provisioning rows only.
CREATE INDEX tenants_provisioning_idx ON tenants (created_at)
  WHERE status = 'provisioning';

CREATE TABLE domains (
  host        text PRIMARY KEY,
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  version     bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT domains_host_format
    CHECK (host = lower(host) AND char_length(host) BETWEEN 3 AND 253)
);

CREATE INDEX domains_tenant_idx ON domains (tenant_id, host);

CREATE SEQUENCE change_seq;

-- Events written in the same transaction as the change they describe; the
-- relay gives them their bus sequence numbers (seq, without holes, in
-- commit order of the relay) and publishes them; Replay serves them again.
CREATE TABLE outbox (
  id           bigserial PRIMARY KEY,
  event_id     uuid NOT NULL UNIQUE,
  topic        text NOT NULL,
  type         text NOT NULL,
  tenant_id    uuid,
  payload      bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  seq          bigint UNIQUE,
  published_at timestamptz
);

CREATE INDEX outbox_unsequenced_idx ON outbox (id) WHERE seq IS NULL;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_access ON tenants
  USING (current_setting('app.directory', true) = 'on'
         OR id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE domains FORCE ROW LEVEL SECURITY;
CREATE POLICY domains_access ON domains
  USING (current_setting('app.directory', true) = 'on'
         OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_access ON outbox
  USING (current_setting('app.directory', true) = 'on'
         OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenants_app') THEN
    EXECUTE 'GRANT USAGE ON SCHEMA tenants TO tenants_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, domains, outbox '
            'TO tenants_app';
    EXECUTE 'GRANT USAGE, SELECT ON SEQUENCE change_seq, outbox_id_seq '
            'TO tenants_app';
  END IF;
END
$$;
