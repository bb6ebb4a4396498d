-- Retention of mutation records (issue 11). Applied by libs/db's
-- migration runner with search_path = sync.
--
-- A mutation's first result is what a retried push is answered with
-- (`duplicate`); devices retry within seconds or minutes, and orders keeps
-- the idempotency key that makes the effect itself exactly-once for 24 h
-- (ORDERS_IDEMPOTENCY_TTL). The record is kept SYNC_MUTATIONS_RETENTION
-- (7 days by default), then the retention round (retention.c) deletes it
-- across tenants (app.sync_sweeper, as the offline sweep and file expiry);
-- an id at or below last_mutation_id without a record is still answered
-- `duplicate`, only without its first result, and never applied again.
CREATE INDEX mutations_created_idx ON mutations (created_at);

CREATE POLICY mutations_sweeper ON mutations
  USING (current_setting('app.sync_sweeper', true) = 'on');
