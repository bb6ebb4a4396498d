-- The pull cursor a device reports in its heartbeats (HTTP-API.md:
-- POST /v1/sync/heartbeat {cursor?}), kept with its other heartbeat state
-- (heartbeat.c flushes it with last_seen_at, app_version and pending).
-- NULL: never reported. Shown on the device (`cursor`, 0 when NULL).
ALTER TABLE devices ADD COLUMN pull_cursor bigint CHECK (pull_cursor >= 0);
