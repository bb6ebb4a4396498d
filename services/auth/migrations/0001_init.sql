-- auth schema: users, refresh-token families and tokens, signing key
-- metadata. Applied by libs/db's migration runner with search_path = auth.
--
-- Tenant isolation: every tenant-owned table carries tenant_id, every query
-- of the service filters on it, and row-level security on
-- current_setting('app.tenant_id') is enabled AND forced (so it binds the
-- table owner too). The service switches to the non-superuser role auth_app
-- inside each transaction (SET LOCAL ROLE, see store.c), so the policies
-- apply even when DATABASE_URL names a superuser, as in dev and tests.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auth_app') THEN
    CREATE ROLE auth_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
EXCEPTION
  -- Another database of the same cluster created it at the same moment, or
  -- the migrating role may not create roles: then the deployment provides
  -- auth_app itself (AUTH_DB_ROLE may also be set to empty to not use it).
  WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
    NULL;
END
$$;

CREATE TABLE users (
  id            uuid PRIMARY KEY,
  tenant_id     uuid NOT NULL,
  email         text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 400),
  role          text NOT NULL CHECK (role IN ('owner', 'admin', 'staff', 'customer')),
  password_hash text NOT NULL,
  disabled      boolean NOT NULL DEFAULT false,
  -- Idempotency key of the CreateUser call that made this user (the tenants
  -- service sends "tenant-owner:<tenant_id>"): the same key returns the
  -- same user instead of creating a second one.
  creation_key  text,
  -- Access tokens issued before this instant are refused (role changed);
  -- new tokens get iat >= this (see handlers.c).
  tokens_valid_after timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, email),
  UNIQUE (tenant_id, creation_key),
  UNIQUE (tenant_id, id)
);
CREATE INDEX users_tenant_role ON users (tenant_id, role, id);

-- One login session: every refresh token rotated from one login shares a
-- family, so reuse of a spent token can revoke the whole chain.
CREATE TABLE refresh_families (
  id          uuid PRIMARY KEY,
  tenant_id   uuid NOT NULL,
  user_id     uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  revoke_reason text,
  UNIQUE (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_families_user ON refresh_families (tenant_id, user_id);

-- Only a hash of each refresh token is stored (SHA-256 of the 32 random
-- bytes): a database leak does not leak usable tokens.
CREATE TABLE refresh_tokens (
  token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
  tenant_id   uuid NOT NULL,
  family_id   uuid NOT NULL,
  -- jti of the access token issued together with this refresh token, so
  -- Logout without a refresh token still finds the session to revoke.
  access_jti  uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  spent_at    timestamptz,
  FOREIGN KEY (tenant_id, family_id) REFERENCES refresh_families (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_jti ON refresh_tokens (tenant_id, access_jti);

-- Routing for Refresh, whose request carries nothing but the token: which
-- tenant does this hash belong to? Not tenant data (an opaque hash and a
-- tenant id), so it has no RLS; the refresh itself then runs in that
-- tenant's transaction against the RLS-protected tables.
CREATE TABLE refresh_token_tenants (
  token_hash  bytea PRIMARY KEY REFERENCES refresh_tokens (token_hash) ON DELETE CASCADE,
  tenant_id   uuid NOT NULL
);

-- Public signing keys seen in configuration (metadata only: never a
-- secret key). status: active (signs) or verify-only.
CREATE TABLE signing_keys (
  kid         text PRIMARY KEY,
  public_key  text NOT NULL,
  status      text NOT NULL CHECK (status IN ('active', 'verify-only')),
  first_seen  timestamptz NOT NULL DEFAULT now(),
  last_seen   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_families ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_families FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON users
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON refresh_families
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON refresh_tokens
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auth_app') THEN
    EXECUTE 'GRANT USAGE ON SCHEMA auth TO auth_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON users, refresh_families, '
            'refresh_tokens, refresh_token_tenants, signing_keys TO auth_app';
  END IF;
END
$$;
