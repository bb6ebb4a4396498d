-- Per-tenant channel settings and the history of delivery attempts.
--
-- settings: which channels a tenant's notifications use - order_* for
-- the ordering customer on its order's status changes, staff_* for
-- owners and admins on StockLow. No row means the defaults (in_app and
-- email on, sms off: store_settings.h, the one place they are written);
-- the first PATCH makes the row. Campaigns carry their own channels.
--
-- delivery_attempts: every attempt of every delivery (webhook, e-mail,
-- SMS), written in the transaction that records the attempt's outcome on
-- the delivery (store_record), so the two never disagree. Bounded: a
-- delivery has at most NOTIFICATIONS_MAX_ATTEMPTS per round, and a retry
-- (POST /v1/deliveries/{id}/retry, the only way to a new round) first
-- trims the history to its newest rows (store_deliveries.c). Gone with
-- its delivery (ON DELETE CASCADE).

CREATE TABLE settings (
  tenant_id    uuid PRIMARY KEY,
  order_in_app boolean NOT NULL,
  order_email  boolean NOT NULL,
  order_sms    boolean NOT NULL,
  staff_in_app boolean NOT NULL,
  staff_email  boolean NOT NULL,
  staff_sms    boolean NOT NULL,
  updated_at   timestamptz NOT NULL
);

CREATE TABLE delivery_attempts (
  tenant_id    uuid NOT NULL,
  delivery_id  uuid NOT NULL,
  id           uuid NOT NULL,  -- UUIDv7: oldest first by id
  number       integer NOT NULL,
  started_at   timestamptz NOT NULL,
  status_code  integer,
  error        text,
  duration_ms  integer NOT NULL,
  PRIMARY KEY (tenant_id, delivery_id, id),
  FOREIGN KEY (tenant_id, delivery_id) REFERENCES deliveries (tenant_id, id)
    ON DELETE CASCADE,
  CONSTRAINT delivery_attempts_number CHECK (number >= 1),
  CONSTRAINT delivery_attempts_duration CHECK (duration_ms >= 0),
  CONSTRAINT delivery_attempts_error_length CHECK (octet_length(error) <= 500)
);

ALTER TABLE settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE settings FORCE ROW LEVEL SECURITY;
CREATE POLICY settings_tenant ON settings
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE delivery_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE delivery_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY delivery_attempts_tenant ON delivery_attempts
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifications_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE ON settings TO notifications_app';
    EXECUTE 'GRANT SELECT, INSERT, DELETE ON delivery_attempts TO notifications_app';
  END IF;
END
$$;
