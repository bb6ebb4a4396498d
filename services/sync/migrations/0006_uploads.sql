-- Streamed uploads (issue 11; docs/adr/0018-sync-file-storage.md
-- "Streaming"): an upload is a series of parts (PutFilePart), each in its
-- own transaction, that any replica may take. Everything an upload needs
-- between two parts is here, not in a process:
--
-- uploads: one row per upload, named by the caller's UUID. sha256 and size
-- are what the first part announced (every part must repeat them);
-- received the bytes applied so far (the next part's offset); hash_state
-- libsodium's crypto_hash_sha256_state after those bytes (its raw struct:
-- files.c checks the length); stored_at set when the last part stored the
-- file (the row stays, so a re-sent last part is answered again, until
-- the janitor removes it after SYNC_UPLOAD_IDLE). The first part reserves
-- size bytes in file_usage; the reservation becomes the file's when it is
-- stored and is given back when the upload is refused or abandoned.
--
-- upload_parts: the bytes of each applied part, keyed by its offset; the
-- last part joins them into sync.files.content (string_agg in offset
-- order) and deletes them. STORAGE EXTERNAL: no compression attempt on
-- bytes that are mostly compressed already.
CREATE TABLE uploads (
  id         uuid PRIMARY KEY,
  tenant_id  uuid NOT NULL,
  sha256     bytea NOT NULL CHECK (octet_length(sha256) = 32),
  size       bigint NOT NULL CHECK (size >= 0 AND size <= 26214400),
  received   bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= size),
  hash_state bytea NOT NULL,
  stored_at  timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_updated_idx ON uploads (updated_at);

CREATE TABLE upload_parts (
  tenant_id uuid NOT NULL,
  upload_id uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  "offset"  bigint NOT NULL CHECK ("offset" >= 0),
  data      bytea NOT NULL CHECK (octet_length(data) <= 1048576),
  PRIMARY KEY (upload_id, "offset")
);
ALTER TABLE upload_parts ALTER COLUMN data SET STORAGE EXTERNAL;

ALTER TABLE uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY uploads_tenant ON uploads
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
-- The janitor (files.c's round) removes idle uploads across tenants
-- (app.sync_sweeper, as the file expiry).
CREATE POLICY uploads_sweeper ON uploads
  USING (current_setting('app.sync_sweeper', true) = 'on');

ALTER TABLE upload_parts ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_parts FORCE ROW LEVEL SECURITY;
CREATE POLICY upload_parts_tenant ON upload_parts
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY upload_parts_sweeper ON upload_parts
  USING (current_setting('app.sync_sweeper', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sync_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON uploads, upload_parts '
            'TO sync_app';
  END IF;
END
$$;
