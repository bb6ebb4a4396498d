-- Custom domains prove control before they route (issue 9). Applied with
-- search_path = tenants.
--
-- A claim (AddDomain) starts unverified with a random token; the tenant
-- serves the token at http://<host>/.well-known/restaurant-domain-
-- verification/<token> and asks VerifyDomain, which fetches it and sets
-- verified_at. Resolve ignores unverified rows.
--
-- Several tenants may claim one host at once (so nobody can block a
-- domain's real owner by claiming it first); only one can hold it
-- verified: the primary key becomes (tenant_id, host) and a partial
-- unique index keeps verified hosts unique (23505 -> ALREADY_EXISTS when
-- a second tenant tries to verify).
ALTER TABLE domains ADD COLUMN verification_token text;
ALTER TABLE domains ADD COLUMN verified_at timestamptz;

-- Existing domains routed before this change: they are marked verified
-- (at their creation time), so live shops keep working. Each was
-- exclusive (host was the primary key), so the unique index below holds.
-- Operators who want them re-proved can clear verified_at and have the
-- tenants verify. FORCE RLS binds the table owner too: this transaction
-- takes the directory scope to see every row.
SELECT set_config('app.directory', 'on', true);
UPDATE domains SET verified_at = created_at WHERE verified_at IS NULL;

ALTER TABLE domains DROP CONSTRAINT domains_pkey;
ALTER TABLE domains ADD CONSTRAINT domains_pkey PRIMARY KEY (tenant_id, host);
CREATE UNIQUE INDEX domains_verified_host_key ON domains (host)
  WHERE verified_at IS NOT NULL;
-- A row is either verified or waiting with a token of 43 base64url chars.
ALTER TABLE domains ADD CONSTRAINT domains_verification_state CHECK (
  verified_at IS NOT NULL OR
  (verification_token IS NOT NULL AND
   verification_token ~ '^[A-Za-z0-9_-]{43}$'));

-- Idempotency-Key of CreateTenant and AddDomain (libs/idem's table
-- shape). CreateTenant is anonymous: its keys live under the nil tenant
-- id with the principal "slug:<slug>" (README.md, "Idempotency-Key");
-- AddDomain's under the caller's tenant and user id. response_code -1 is
-- a saga's pending claim.
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
CREATE POLICY idempotency_access ON idempotency
  USING (current_setting('app.directory', true) = 'on'
         OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenants_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency '
            'TO tenants_app';
  END IF;
END
$$;
