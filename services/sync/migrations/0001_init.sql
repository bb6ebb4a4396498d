-- The sync schema: devices, their mutations, conflicts, the tenant's
-- settings and the outbox of device events (issue 11, HTTP-API.md "Offline sync and
-- devices"). Applied by libs/db's migration runner with search_path = sync.
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

-- A device of a tenant. Ids are UUIDv7 minted by the service and
-- created_at is the id's own time. secret_hash is the keyed BLAKE2b-256 of
-- the device's 32-byte random secret under the server's pepper
-- (SYNC_DEVICE_PEPPER, docs/adr/0016-sync-device-secrets.md): the secret itself
-- is never stored. A deleted device's row goes (its tokens are revoked
-- through auth); its mutation records go with it.
CREATE TABLE devices (
  tenant_id        uuid NOT NULL,
  id               uuid NOT NULL,
  name             text NOT NULL,
  platform         text NOT NULL DEFAULT '',
  secret_hash      bytea NOT NULL,
  created_at       timestamptz NOT NULL,
  -- The heartbeat's state, flushed from Redis in batches (heartbeat.c).
  last_seen_at     timestamptz,
  app_version      text NOT NULL DEFAULT '',
  pending          integer NOT NULL DEFAULT 0,
  online           boolean NOT NULL DEFAULT false,
  -- Push: the id of the last mutation applied (0: none yet), advanced in
  -- the transaction that records the mutation's result (mutations).
  last_mutation_id bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT devices_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
  CONSTRAINT devices_platform_length CHECK (char_length(platform) <= 50),
  CONSTRAINT devices_app_version_length CHECK (char_length(app_version) <= 50),
  CONSTRAINT devices_pending_range CHECK (pending >= 0),
  CONSTRAINT devices_secret_hash_length CHECK (octet_length(secret_hash) = 32),
  CONSTRAINT devices_last_mutation_id CHECK (last_mutation_id >= 0)
);

-- Every mutation a device pushed, with its first result (the serialised
-- sync.v1.MutationResult), so a duplicate is answered with it. Written in
-- the transaction that advances devices.last_mutation_id.
CREATE TABLE mutations (
  tenant_id  uuid NOT NULL,
  device_id  uuid NOT NULL,
  id         bigint NOT NULL,
  name       text NOT NULL,
  status     text NOT NULL,
  result     bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, device_id, id),
  FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
    ON DELETE CASCADE,
  CONSTRAINT mutations_id_positive CHECK (id >= 1),
  CONSTRAINT mutations_status CHECK
    (status IN ('applied', 'rejected', 'conflict'))
);

-- Conflicts kept under the manual policy until staff resolve them.
-- client: what the device asked (sync.v1.ClientChange), server: the order
-- when the conflict arose (orders.v1.Order), both serialised.
CREATE TABLE conflicts (
  tenant_id   uuid NOT NULL,
  id          uuid NOT NULL,
  device_id   uuid NOT NULL,
  mutation_id bigint NOT NULL,
  entity      text NOT NULL,
  entity_id   uuid NOT NULL,
  client      bytea NOT NULL,
  server      bytea NOT NULL,
  created_at  timestamptz NOT NULL,
  resolved_at timestamptz,
  resolution  text,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT conflicts_resolution CHECK
    (resolution IS NULL OR resolution IN ('server', 'client', 'merged'))
);
CREATE INDEX conflicts_open_idx ON conflicts (tenant_id, id)
  WHERE resolved_at IS NULL;

-- The tenant's sync settings (absent: the defaults).
CREATE TABLE settings (
  tenant_id       uuid PRIMARY KEY,
  conflict_policy text NOT NULL DEFAULT 'server_wins',
  CONSTRAINT settings_policy CHECK
    (conflict_policy IN ('server_wins', 'last_write_wins', 'manual'))
);

-- The offline sweep's scan: online devices by last heartbeat.
CREATE INDEX devices_online_seen_idx ON devices (last_seen_at) WHERE online;

-- The transactional outbox (libs/outbox/outbox.h): DeviceOnline and
-- DeviceOffline on devices.<tenant_id>, written in the transaction that
-- changes the device's online flag.
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
CREATE INDEX outbox_unpublished_idx ON outbox (seq)
  WHERE seq IS NOT NULL AND published_at IS NULL;

-- Row-level security: a request transaction sees its tenant only. Two
-- kinds of transaction see across tenants, each through its own
-- permissive policy and setting: the outbox relay and Replay
-- (app.outbox_relay = 'on', libs/outbox) and the offline sweep
-- (app.sync_sweeper = 'on', heartbeat.c), which marks devices of every
-- tenant offline and writes their events.
ALTER TABLE devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE devices FORCE ROW LEVEL SECURITY;
CREATE POLICY devices_tenant ON devices
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY devices_sweeper ON devices
  USING (current_setting('app.sync_sweeper', true) = 'on');

ALTER TABLE mutations ENABLE ROW LEVEL SECURITY;
ALTER TABLE mutations FORCE ROW LEVEL SECURITY;
CREATE POLICY mutations_tenant ON mutations
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE conflicts ENABLE ROW LEVEL SECURITY;
ALTER TABLE conflicts FORCE ROW LEVEL SECURITY;
CREATE POLICY conflicts_tenant ON conflicts
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE settings FORCE ROW LEVEL SECURITY;
CREATE POLICY settings_tenant ON settings
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_tenant ON outbox
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY outbox_relay ON outbox
  USING (current_setting('app.outbox_relay', true) = 'on');
CREATE POLICY outbox_sweeper ON outbox
  USING (current_setting('app.sync_sweeper', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sync_app') THEN
    EXECUTE 'GRANT USAGE ON SCHEMA sync TO sync_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON devices, mutations, '
            'conflicts, settings, outbox TO sync_app';
    EXECUTE 'GRANT USAGE, SELECT ON SEQUENCE outbox_id_seq TO sync_app';
  END IF;
END
$$;
