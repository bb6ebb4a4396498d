-- Content-addressed files of a tenant (HTTP-API.md "Offline sync and
-- devices": HEAD/GET/PUT /v1/sync/files/{sha256}, POST /files/missing).
-- docs/adr/0018-sync-file-storage.md says why the bytes live here, as one
-- bytea per file (TOAST stores it out of line, compressed and chunked),
-- rather than in large objects or on a volume.
--
-- The key is (tenant_id, sha256): the same bytes uploaded by two tenants
-- are two rows, and one tenant cannot learn that another holds a hash.
-- last_used_at moves on every upload, read and manifest mention; the
-- expiry job (files.c) deletes rows unused for SYNC_FILES_TTL.
CREATE TABLE files (
  tenant_id    uuid NOT NULL,
  sha256       bytea NOT NULL CHECK (octet_length(sha256) = 32),
  size         bigint NOT NULL CHECK (size >= 0 AND size <= 26214400),
  content      bytea NOT NULL CHECK (octet_length(content) = size),
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sha256)
);
-- Bytes are mostly already compressed (images, archives): do not try again.
ALTER TABLE files ALTER COLUMN content SET STORAGE EXTERNAL;
CREATE INDEX files_last_used_idx ON files (last_used_at);

-- A tenant's stored bytes, kept in the transaction of every insert and
-- delete; the quota check is one conditional UPDATE of this row, so two
-- concurrent uploads cannot both slip under the limit.
CREATE TABLE file_usage (
  tenant_id uuid PRIMARY KEY,
  bytes     bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0)
);

ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY files_tenant ON files
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
-- The expiry job deletes across tenants (app.sync_sweeper, as the offline
-- sweep).
CREATE POLICY files_sweeper ON files
  USING (current_setting('app.sync_sweeper', true) = 'on');

ALTER TABLE file_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE file_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY file_usage_tenant ON file_usage
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY file_usage_sweeper ON file_usage
  USING (current_setting('app.sync_sweeper', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sync_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON files, file_usage '
            'TO sync_app';
  END IF;
END
$$;
