-- Idempotency-Key of RegisterDevice (libs/idem's table shape,
-- libs/idem/once.h): the key scoped to the tenant and the calling user,
-- BLAKE2b-256 of the request, and the answer, sealed - it holds the
-- device secret, shown only at registration: crypto_secretbox under a key
-- derived from the request and SYNC_DEVICE_PEPPER, which the database
-- never holds. Written in the transaction that inserts the device. Rows
-- past expires_at are ignored by lookups and deleted by the expiry round
-- (libs/idem/expiry.h) across tenants under app.sync_sweeper, like the
-- offline sweep and the file expiry.

CREATE TABLE idempotency (
  tenant_id     uuid NOT NULL,
  principal     text NOT NULL,
  key           text NOT NULL,
  method        text NOT NULL,
  request_hash  bytea NOT NULL,
  response_code integer NOT NULL,
  response      bytea NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, principal, key),
  CONSTRAINT idempotency_key_length CHECK (length(key) BETWEEN 1 AND 255),
  CONSTRAINT idempotency_hash_length CHECK (length(request_hash) = 32)
);
CREATE INDEX idempotency_expiry_idx ON idempotency (expires_at);

ALTER TABLE idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_tenant ON idempotency
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY idempotency_sweeper ON idempotency
  USING (current_setting('app.sync_sweeper', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sync_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency TO sync_app';
  END IF;
END
$$;
