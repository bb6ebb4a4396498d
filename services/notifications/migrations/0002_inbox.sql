-- The in-app inbox, and the outbox of this service's own events.
--
-- inbox: one notification of one user. UNIQUE (tenant_id, event_id,
-- user_id) is the idempotency of the fan-out: an event seen twice (a
-- replay, two replicas) gives each recipient one notification. Every
-- query filters on tenant_id AND user_id (a member reads only their own
-- inbox); row-level security binds the tenant.
--
-- outbox: libs/outbox's table (see libs/outbox/outbox.h): each new
-- notification appends a "Notification" event on "private.user.<user_id>"
-- in the transaction that inserts it; the relay publishes it on this
-- service's bus for realtime, and notifications.v1.Events/Replay serves
-- it again.

CREATE TABLE inbox (
  tenant_id  uuid NOT NULL,
  id         uuid NOT NULL,
  user_id    uuid NOT NULL,
  event_id   uuid NOT NULL,
  type       text NOT NULL,
  title      text NOT NULL,
  body       text NOT NULL,
  data       jsonb NOT NULL DEFAULT '{}',
  read_at    timestamptz,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, event_id, user_id),
  CONSTRAINT inbox_type_length CHECK (octet_length(type) BETWEEN 1 AND 64),
  CONSTRAINT inbox_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
  CONSTRAINT inbox_body_length CHECK (char_length(body) <= 2000),
  CONSTRAINT inbox_data_object CHECK (jsonb_typeof(data) = 'object'),
  CONSTRAINT inbox_data_size CHECK (octet_length(data::text) <= 4096)
);
CREATE INDEX inbox_by_user ON inbox (tenant_id, user_id, id DESC);
CREATE INDEX inbox_unread ON inbox (tenant_id, user_id) WHERE read_at IS NULL;

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

ALTER TABLE inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY inbox_tenant ON inbox
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_tenant ON outbox
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY outbox_relay ON outbox
  USING (current_setting('app.outbox_relay', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifications_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON inbox, outbox TO notifications_app';
    EXECUTE 'GRANT USAGE, SELECT ON SEQUENCE outbox_id_seq TO notifications_app';
  END IF;
END
$$;
