-- Idempotent user creation remembers who asked and what (services/auth/idem.h):
-- the key is scoped by the calling principal ('internal', 'user:<id>',
-- 'register'), and a keyed BLAKE2b-256 of the request tells a retry (same
-- hash: the first answer again) from a reused key (another hash:
-- INVALID_ARGUMENT). Keys made before this migration came from token-less
-- CreateUser (the tenants service's owner key): they become 'internal', and
-- having no hash they replay as they did.

ALTER TABLE users ADD COLUMN creation_principal text;
ALTER TABLE users ADD COLUMN creation_hash bytea
  CHECK (creation_hash IS NULL OR length(creation_hash) = 32);

UPDATE users SET creation_principal = 'internal' WHERE creation_key IS NOT NULL;

ALTER TABLE users ADD CONSTRAINT users_creation_key_scoped
  CHECK ((creation_key IS NULL) = (creation_principal IS NULL));
ALTER TABLE users DROP CONSTRAINT users_tenant_id_creation_key_key;
ALTER TABLE users ADD CONSTRAINT users_creation_key_unique
  UNIQUE (tenant_id, creation_principal, creation_key);
