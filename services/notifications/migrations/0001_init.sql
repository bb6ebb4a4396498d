-- The notifications schema, first slice: webhook endpoints, their
-- deliveries, and the service's position in each event source's sequence.
-- Applied by libs/db's migration runner with search_path = notifications.
--
-- Tenant isolation: every tenant-owned row carries tenant_id, every query
-- of the service filters on it, and row-level security on
-- current_setting('app.tenant_id') is enabled AND forced (so it binds the
-- table owner too). The service switches to the non-superuser role
-- notifications_app inside each transaction (SET LOCAL ROLE through
-- set_config('role', .., true), see store.c, NOTIFICATIONS_DB_ROLE), so the
-- policies apply even when DATABASE_URL names a superuser, as in dev and
-- tests. One more policy lets the sweeper (sweep.c) SELECT due deliveries
-- of every tenant, only in a transaction that sets app.notifications_sweep
-- = 'on' (service code, never input), only reading: each delivery it finds
-- is then claimed and recorded in a transaction of its own tenant.
--
-- Secrets are stored sealed (libsodium secretbox under
-- NOTIFICATIONS_SECRET_KEY, nonce first): a dump of the database does not
-- let anyone sign webhooks.
--
-- CHECK constraints repeat the service's input rules (handlers.c) as the
-- last wall.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifications_app') THEN
    CREATE ROLE notifications_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
EXCEPTION
  -- Created concurrently by another database of the cluster, or the
  -- migrating role may not create roles: the deployment then provides
  -- notifications_app itself (or sets NOTIFICATIONS_DB_ROLE empty).
  WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
    NULL;
END
$$;

-- Ids are UUIDv7 minted by the service and created_at is the id's own
-- time, so "newest first" by id and by created_at agree.
CREATE TABLE endpoints (
  tenant_id         uuid NOT NULL,
  id                uuid NOT NULL,
  url               text NOT NULL,
  events            text[] NOT NULL,
  description       text NOT NULL DEFAULT '',
  active            boolean NOT NULL DEFAULT true,
  secret_box        bytea NOT NULL,
  -- After a rotation the previous secret still signs (a second
  -- signature) until prev_secret_until.
  prev_secret_box   bytea,
  prev_secret_until timestamptz,
  created_at        timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT endpoints_url_length CHECK (octet_length(url) BETWEEN 1 AND 2048),
  CONSTRAINT endpoints_url_scheme CHECK (url ~* '^https?://'),
  CONSTRAINT endpoints_events_count CHECK (cardinality(events) BETWEEN 1 AND 16),
  CONSTRAINT endpoints_description_length CHECK (char_length(description) <= 500)
);

-- One event to one endpoint. The UNIQUE key is the idempotency of the
-- fan-out: an event seen twice (a replay, two replicas) makes one row.
-- body is the exact JSON sent, rendered once, so every attempt signs and
-- sends the same bytes. lease_until is the claim of the worker sending
-- it now (one sender at a time, see queue.c).
CREATE TABLE deliveries (
  tenant_id        uuid NOT NULL,
  id               uuid NOT NULL,
  endpoint_id      uuid NOT NULL,
  event_id         uuid NOT NULL,
  event_type       text NOT NULL,
  body             text NOT NULL,
  status           text NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0,
  last_status_code integer,
  last_error       text,
  next_attempt_at  timestamptz,
  lease_until      timestamptz,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, endpoint_id, event_id),
  FOREIGN KEY (tenant_id, endpoint_id) REFERENCES endpoints (tenant_id, id)
    ON DELETE CASCADE,
  CONSTRAINT deliveries_status CHECK (status IN ('pending', 'succeeded', 'dead')),
  CONSTRAINT deliveries_attempts CHECK (attempts >= 0),
  CONSTRAINT deliveries_body_length CHECK (octet_length(body) <= 1048576),
  CONSTRAINT deliveries_error_length CHECK (octet_length(last_error) <= 500)
);
CREATE INDEX deliveries_by_endpoint ON deliveries (tenant_id, endpoint_id, id DESC);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';

-- The last seq of each event source (the bus) whose events have been
-- fanned out: read at start so that nothing published while the service
-- was down is missed (bus_subscriber_set_position). Not tenant data.
CREATE TABLE bus_positions (
  source   text PRIMARY KEY,
  last_seq bigint NOT NULL CHECK (last_seq >= 0)
);

-- Row-level security: a request transaction sees its tenant only.
ALTER TABLE endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY endpoints_tenant ON endpoints
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY deliveries_tenant ON deliveries
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY deliveries_sweep ON deliveries FOR SELECT
  USING (current_setting('app.notifications_sweep', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifications_app') THEN
    EXECUTE 'GRANT USAGE ON SCHEMA notifications TO notifications_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON endpoints, deliveries TO notifications_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE ON bus_positions TO notifications_app';
  END IF;
END
$$;
