-- Retention of finished deliveries and, when configured, of read inbox
-- notifications (retention.c). Applied by libs/db's migration runner with
-- search_path = notifications.
--
-- A succeeded or dead delivery is history: kept for
-- NOTIFICATIONS_DELIVERIES_RETENTION (30 days by default) after its last
-- change (updated_at), then the retention round deletes it, its attempts
-- going with it (delivery_attempts' foreign key cascades). A pending one
-- is never deleted, whatever its age: it is still to be sent.
--
-- The round runs across tenants under app.notifications_sweep, like the
-- sweep and the idempotency expiry, in batches chosen with FOR UPDATE
-- SKIP LOCKED so that replicas share the work. Locking rows needs an
-- UPDATE policy (PostgreSQL checks UPDATE policies for SELECT FOR
-- UPDATE); this one never lets an UPDATE through (WITH CHECK false), so
-- the sweep setting can lock and delete finished deliveries and nothing
-- else. Both policies exclude pending rows themselves, so no bug in the
-- query can prune one.
CREATE INDEX deliveries_finished ON deliveries (updated_at)
  WHERE status <> 'pending';

CREATE POLICY deliveries_prune ON deliveries FOR DELETE
  USING (current_setting('app.notifications_sweep', true) = 'on'
         AND status IN ('succeeded', 'dead'));
CREATE POLICY deliveries_prune_lock ON deliveries FOR UPDATE
  USING (current_setting('app.notifications_sweep', true) = 'on'
         AND status IN ('succeeded', 'dead'))
  WITH CHECK (false);

-- Read notifications of the inbox, when NOTIFICATIONS_INBOX_READ_RETENTION
-- is set (off by default: README.md, "Retention"), go that long after
-- they were read; an unread one never goes. The same three powers, for
-- read rows only (the inbox had no sweep policy: SELECT is needed too, as
-- the DELETE reads read_at).
CREATE INDEX inbox_read ON inbox (read_at) WHERE read_at IS NOT NULL;

CREATE POLICY inbox_prune_read ON inbox FOR SELECT
  USING (current_setting('app.notifications_sweep', true) = 'on'
         AND read_at IS NOT NULL);
CREATE POLICY inbox_prune ON inbox FOR DELETE
  USING (current_setting('app.notifications_sweep', true) = 'on'
         AND read_at IS NOT NULL);
CREATE POLICY inbox_prune_lock ON inbox FOR UPDATE
  USING (current_setting('app.notifications_sweep', true) = 'on'
         AND read_at IS NOT NULL)
  WITH CHECK (false);
