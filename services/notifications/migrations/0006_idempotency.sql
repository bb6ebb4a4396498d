-- Idempotency-Key of CreateWebhook and CreateCampaign (libs/idem's table
-- shape, libs/idem/once.h): the key scoped to the tenant and the calling
-- user, BLAKE2b-256 of the request, and the answer, sealed (a webhook's
-- answer holds its secret: crypto_secretbox under a key derived from the
-- request and NOTIFICATIONS_SECRET_KEY, which the database never holds).
-- Written in the transaction that creates the webhook or campaign. Rows
-- past expires_at are ignored by lookups and deleted by the expiry round
-- (libs/idem/expiry.h), which runs across tenants under
-- app.notifications_sweep, like the sweep.

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
-- The expiry round reads and deletes across tenants (it only ever
-- deletes rows past expires_at).
CREATE POLICY idempotency_sweep ON idempotency
  USING (current_setting('app.notifications_sweep', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifications_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency TO notifications_app';
  END IF;
END
$$;
